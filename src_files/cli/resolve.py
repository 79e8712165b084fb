"""From the parsed flags to frozen settings (src_files/settings.py), once per run.

`train_settings` resolves, in this order: --demo's defaults, a resumed run's own settings (latest.pth), the model
settings a --model-path file records (fine-tuning), the checks of each value, the recipe's defaults (--recipe a2), and the loss settings of the data's task (multi- or
single-label, from its layout). `inference_settings` does the same for validate.py, infer.py and export.py,
whose model settings the checkpoint may fill in later (src_files/inference/load.py). Flags given on the command
line always win; a flag that would change a resumed run is an error.
"""
import dataclasses
import logging
import math
import os
import shlex

from src_files import distributed
from src_files.cli.flags import A2, A2_LR, A2_LR_BATCH, A2_ONLY, DEMO, DEMO_OUTPUT, RECIPE_KEYS, flag_name
from src_files import data as datasets
from src_files.data.csv_list import label_separator
from src_files.data.formats import SINGLE_LABEL_FORMATS, detect_format
from src_files.errors import UserError
from src_files.inference.load import note_overrides
from src_files.models import load_checkpoint
from src_files.models.config import MODEL_FIELDS, TRESNET_NAMES, ModelConfig
from src_files.models.factory import guess_tresnet
from src_files.models.zoo import recorded_settings, zoo_image_size
from src_files.settings import (MULTI, SINGLE, DataSettings, InferenceSettings, OptimSettings, RunSettings,
                                SpeedSettings, TrainSettings, fill_defaults)
from src_files.training import checkpoint as ckpt

LOG = logging.getLogger(__name__)

# Settings that define the run: taken from latest.pth on --resume; giving a different value is an error for
# the STRUCTURAL ones (the result would not be the run that was started).
STRUCTURAL_KEYS = MODEL_FIELDS + ('epochs', 'batch_size', 'lr', 'weight_decay', 'ema_decay', 'seed', 'no_aug',
                                  'unknown_as_negative', 'query_noise', 'query_drop') + RECIPE_KEYS
RUN_KEYS = STRUCTURAL_KEYS + ('data', 'data_format', 'train_split', 'val_split', 'val_csv', 'label_sep', 'model_path',
                              'demo', 'amp', 'text_encoder', 'text_names', 'prompts')


# ----------------------------------------------------------------------------------------------------------
# Training.

def train_settings(values, explicit, script):
    """(TrainSettings, the latest.pth being resumed or None, a 'finished' message or None) of train.py or
    train_zsl_nus.py (`script`)."""
    values = dict(values)
    demo_root = datasets.demo_nus_root if script == 'train_zsl_nus.py' else datasets.demo_coco_root
    if values['demo']:
        demo = dict(DEMO, output_dir=DEMO_OUTPUT[script])
        if 'data' not in explicit:
            demo['data'] = demo_root()
        fill_defaults(values, explicit, demo, note="demo settings")
    if values['output_dir'] is None:
        values['output_dir'] = default_output_dir(values['data'], script)
    state = resume_state(values, explicit, script)
    if state is None and values['model_path']:
        fine_tune_settings(values, explicit, script)
    if state is not None and values['demo'] and 'data' not in explicit and not os.path.isdir(str(values['data'])):
        values['data'] = demo_root()  # the demo cache was cleared: build it again
    check_train_values(values)
    if 'compile_mode' in explicit and not values['compile'] and os.environ.get('RANK', '0') == '0':
        LOG.info(f"note: --compile-mode {values['compile_mode']} acts only with --compile; training without either")
    finished = finished_message(values, state) if state is not None else None
    if state is None:
        note = ckpt.refuse_to_overwrite(values['output_dir'], allow_unfinished_first_epoch=values['resume'] == 'auto')
        if note and os.environ.get('RANK', '0') == '0':
            LOG.info(note)
    if script == 'train.py' and values['zsl'] and not values.get('text_encoder'):
        raise UserError("train.py --zsl 1 builds its queries from the class names: give --text-encoder (a word-vector "
                        "file, a matrix with --text-names, or open_clip:...; Datasets.md, 'Open-vocabulary labels'), "
                        "or train on NUS-WIDE's word vectors with train_zsl_nus.py")
    if not values['zsl'] and (values.get('text_encoder') or values.get('query_noise') or values.get('query_drop')):
        raise UserError("--text-encoder, --query-noise and --query-drop are for zero-shot training (--zsl 1)")
    if not (values.get('query_noise') or 0) >= 0 or not 0 <= (values.get('query_drop') or 0) < 1:
        raise UserError("--query-noise must be 0 or more and --query-drop between 0 and 1 (0 = off)")
    if script == 'train_zsl_nus.py':
        if not values['zsl']:
            raise UserError("train_zsl_nus.py trains zero-shot models (--zsl 1); use train.py for --zsl 0")
        if not values['use_ml_decoder']:
            raise UserError("zero-shot training needs the ML-Decoder head (--use-ml-decoder 1)")
    if finished:
        return None, state, finished
    distributed.resolve_device(values['device'])  # (a bad --device is named before the data is read)
    task = MULTI
    if script == 'train.py':
        resolve_recipe(values, explicit, distributed.world_size())
        data_format = values['data_format']
        task = SINGLE if (data_format if data_format != 'auto' else detect_format(values['data'])) \
            in SINGLE_LABEL_FORMATS else MULTI
        resolve_task(values, explicit, task)
    return build_train_settings(values, task, script), state, None


FINE_TUNE_KEYS = ('model_name', 'image_size', 'use_ml_decoder', 'num_of_groups', 'decoder_embedding')


def fine_tune_settings(values, explicit, script):
    """Training from --model-path FILE: the model settings FILE records (a best.pth or latest.pth of train.py), else
    the backbone its weights show and (train.py) the model zoo's image size for it; train_zsl_nus.py keeps its own
    image size, as published. Flags given win, with a note where they
    differ; what is taken is said in one line. (The head is trained anew for the data's classes.)"""
    path = values['model_path']
    state_dict, extras = load_checkpoint(path, unsafe=values['unsafe_load'])
    recorded = {k: v for k, v in recorded_settings(extras).items() if k in FINE_TUNE_KEYS}
    name = guess_tresnet(state_dict)
    if not recorded and name:  # a model-zoo file, a pretrained backbone or a bare state dict
        recorded['model_name'] = name
        if script == 'train.py':
            recorded['image_size'] = zoo_image_size(name)[0]
    note_overrides(path, values, explicit, recorded)
    fill_defaults(values, explicit, recorded, note=f"settings from {path}")


def default_output_dir(data, script):
    """outputs/<name of the data folder> (of the folder holding --data where it is a label file; train_zsl_nus.py:
    outputs/<name>_zsl): runs on different data never share a folder by default."""
    path = os.path.normpath(os.path.abspath(str(data)))
    name = os.path.basename(os.path.dirname(path) if os.path.isfile(path) else path) or 'run'
    return os.path.join('outputs', name + ('_zsl' if script == 'train_zsl_nus.py' else ''))


def build_train_settings(values, task, script):
    """TrainSettings of resolved flag `values`."""
    v = values
    optim = OptimSettings(
        recipe=v.get('recipe') or 'published', epochs=v['epochs'], lr=v['lr'], weight_decay=v['weight_decay'],
        ema_decay=v['ema_decay'], amp=v['amp'], augment=not v['no_aug'], seed=v['seed'],
        loss=v.get('loss') or 'asl', smoothing=v.get('smoothing') or 0.0, bce_target_thresh=v.get('bce_target_thresh'),
        opt=v.get('opt'), warmup_epochs=v.get('warmup_epochs') or 0, mixup=v.get('mixup') or 0.0,
        cutmix=v.get('cutmix') or 0.0, aug_repeats=v.get('aug_repeats') or 1, rand_aug=v.get('rand_aug') or 'none',
        drop_path=v.get('drop_path') or 0.0, query_noise=v.get('query_noise') or 0.0,
        query_drop=v.get('query_drop') or 0.0)
    data = DataSettings(root=v['data'], format=v.get('data_format', 'nus_wide'), task=task,
                        train_split=v.get('train_split'), val_split=v.get('val_split'), val_csv=v.get('val_csv'),
                        label_sep=label_separator(v.get('label_sep')),
                        text_encoder=v.get('text_encoder'), text_names=v.get('text_names'), prompts=v.get('prompts'),
                        unknown_as_negative=v.get('unknown_as_negative', False), batch_size=v['batch_size'],
                        workers=v['workers'], uint8_batches=v['uint8_batches'],
                        check_images=v.get('check_images', 'auto'), skip_bad_images=v.get('skip_bad_images', False))
    run = RunSettings(output_dir=v['output_dir'], device=v['device'], model_path=v['model_path'],
                      unsafe_load=v['unsafe_load'], resume_path=v.get('resume_path'), stop_after=v['stop_after'],
                      memory_check=not v['no_memory_check'], resume_auto=v.get('resume') == 'auto', demo=v['demo'],
                      script=script)
    record = tuple((k, x) for k, x in v.items() if isinstance(x, (str, int, float, bool, type(None))))
    return TrainSettings(model=ModelConfig.from_dict(v), data=data, optim=optim, speed=speed_settings(v), run=run,
                         record=record)


def speed_settings(values):
    keys = [f.name for f in dataclasses.fields(SpeedSettings)]
    return SpeedSettings(**{k: values[k] for k in keys if k in values})


def check_train_values(values):
    for key in ('lr', 'batch_size', 'epochs', 'image_size'):
        if not values[key] > 0:
            raise UserError(f"{flag_name(key)} must be positive, got {values[key]}")
    for key in ('workers', 'stop_after'):
        if values[key] < 0:
            raise UserError(f"{flag_name(key)} must be 0 or more, got {values[key]}")
    if not 0 <= values['ema_decay'] < 1:
        raise UserError(f"--ema-decay must be in [0, 1), got {values['ema_decay']}")
    if not math.isfinite(values['lr']) or not 0 <= values['weight_decay'] < math.inf:
        raise UserError(f"--lr must be finite and --weight-decay 0 or more, got {values['lr']} and "
                        f"{values['weight_decay']}")
    if not 0 <= values['seed'] < 2 ** 32:
        raise UserError(f"--seed must be in [0, 2**32), got {values['seed']}")


def resume_state(values, explicit, script='train.py'):
    """With --resume: load latest.pth and merge its settings into `values` (flags given now win, except the ones
    that would change the run: an error); -> the checkpoint dict, or None for a fresh run."""
    if values.get('resume') is None:
        return None
    if values['resume'] == 'auto':  # the same command on every start of a job: resume if there is a run, else start
        path = os.path.join(values['output_dir'], ckpt.LATEST)
        if not os.path.isfile(path):
            if os.environ.get('RANK', '0') == '0':
                LOG.info(f"--resume auto: no {ckpt.LATEST} in {values['output_dir']}: starting a new run")
            return None
        values['resume'] = path
    path = values['resume'] or os.path.join(values['output_dir'], ckpt.LATEST)
    if os.path.isdir(path):  # --resume RUN_FOLDER means its latest.pth
        path = os.path.join(path, ckpt.LATEST)
    if values['resume'] and 'output_dir' not in explicit:
        values['output_dir'] = os.path.dirname(os.path.abspath(path))
    state = ckpt.load_latest(path)
    saved = state['args']
    if 'epochs' in explicit and int(state['epoch']) >= int(saved.get('epochs', 0)) < values['epochs']:
        raise UserError(extend_message(values, saved, os.path.dirname(os.path.abspath(path)), int(state['epoch']),
                                       script))
    for key in STRUCTURAL_KEYS:
        if key in explicit and key in saved and values.get(key) != saved[key]:
            flag = flag_name(key)
            raise UserError(f"{flag} {values.get(key)} differs from the run being resumed ({flag} {saved[key]} "
                            f"in {path}); resume with the same setting or start a new run in another --output-dir")
    for key in RUN_KEYS:
        if key in saved and key not in explicit:
            values[key] = saved[key]
    values['resume_path'] = path
    return state


# The flags of a finished run that a fine-tuning run continuing it repeats (where they differ from the defaults);
# the model's own settings come from its best.pth.
EXTEND_KEYS = ('data_format', 'batch_size', 'lr', 'weight_decay', 'ema_decay', 'no_aug', 'seed', 'amp', 'recipe')


def extend_message(values, saved, run_dir, done, script):
    """A finished run cannot be resumed for more epochs (its schedule ended): the command that trains on from its
    best weights, for the epochs asked beyond those done, into a new folder. `values`: this invocation's flags
    (parser defaults where not given)."""
    source = ['--demo'] if saved.get('demo') else ['--data', str(saved.get('data', values['data']))]
    kept = []
    for key in EXTEND_KEYS:
        value = saved.get(key)
        if key not in values or value is None or value == values[key] or value is False:
            continue
        kept += [flag_name(key)] if value is True else [flag_name(key), str(value)]
    more = values['epochs'] - done
    command = shlex.join(['python', script] + source + ['--model-path', os.path.join(run_dir, ckpt.BEST), '--epochs',
                                                      str(more)] + kept + ['--output-dir', run_dir + '_more'])
    return (f"the run in {run_dir} finished its {done} epochs: its learning-rate schedule has ended, so it cannot "
            f"be resumed for more; to train {more} more epoch(s) from its best weights (a new schedule, in a new "
            f"folder), run: {command}")


def finished_message(values, state):
    """The line printed by --resume on a run whose last epoch is done (None if it is not finished)."""
    epochs = int(state['args'].get('epochs', values['epochs']))
    if int(state['epoch']) < epochs:
        return None
    return (f"the run in {values['output_dir']} already finished ({state['epoch']}/{epochs} epochs, best "
            f"{state.get('metric_name', 'mAP')} {float(state.get('best', float('nan'))):.2f} at epoch "
            f"{state.get('best_epoch', '?')}); nothing to do")


def resolve_recipe(values, explicit, world_size):
    """Check the recipe flags and fill A2's task-independent settings (flags given win; a resumed run keeps its
    own)."""
    for key in RECIPE_KEYS:  # (flags not given are absent: their defaults depend on the recipe)
        values.setdefault(key, None)
    if values['recipe'] != 'a2':
        given = [key for key in A2_ONLY if values[key] is not None]
        if given:
            raise UserError(f"{flag_name(given[0])} is a setting of --recipe a2 (the published recipe has Adam, "
                            f"OneCycle and its own augmentation): add --recipe a2 or leave it out")
        return
    for key in ('opt', 'warmup_epochs', 'aug_repeats', 'rand_aug'):
        if values[key] is None:
            values[key] = A2[key]
    if values.get('resume_path') is None:  # (resumed: lr and weight decay are the run's own)
        if 'weight_decay' not in explicit:
            values['weight_decay'] = A2['weight_decay']
        if 'lr' not in explicit:
            values['lr'] = A2_LR * values['batch_size'] * world_size / A2_LR_BATCH
    if values['model_name'].lower() in TRESNET_NAMES:
        if values['drop_path']:
            raise UserError(f"--drop-path: {values['model_name']} has no drop path (timm backbones have); leave it "
                            f"out")
        values['drop_path'] = 0.0
    elif values['drop_path'] is None:
        values['drop_path'] = A2['drop_path']
    if values['warmup_epochs'] < 0 or values['aug_repeats'] < 1 or not 0 <= values['drop_path'] < 1:
        raise UserError("--warmup-epochs must be 0 or more, --aug-repeats 1 or more and --drop-path in [0, 1)")
    if values['rand_aug'] != 'none' and not values['rand_aug'].startswith('rand-'):
        raise UserError(f"--rand-aug {values['rand_aug']}: give a timm RandAugment string such as "
                        f"{A2['rand_aug']}, or none")


def resolve_task(values, explicit, task):
    """The loss settings for the data's task (MULTI or SINGLE)."""
    a2 = values['recipe'] == 'a2'
    if task != SINGLE:
        for key in ('loss', 'smoothing', 'bce_target_thresh'):
            if key in explicit:
                raise UserError(f"{flag_name(key)} is for single-label data: multi-label data trains with the "
                                f"published ASL")
        if a2 and ((values['mixup'] or 0) > 0 or (values['cutmix'] or 0) > 0):
            raise UserError("--mixup / --cutmix are for single-label data: mixing would turn the multi-label "
                            "targets (1 / 0 / unknown, for ASL) into fractions; leave both out (they are off "
                            "for multi-label data)")
        if a2:
            values['mixup'] = values['cutmix'] = 0.0
        return
    if values['loss'] is None:
        values['loss'] = 'bce' if a2 else 'asl'
    if values['smoothing'] is None:
        values['smoothing'] = A2['smoothing'] if a2 else 0.1
    if a2:
        values['mixup'] = A2['mixup'] if values['mixup'] is None else values['mixup']
        values['cutmix'] = A2['cutmix'] if values['cutmix'] is None else values['cutmix']
    if values['loss'] == 'bce' and values['bce_target_thresh'] is None and a2:
        values['bce_target_thresh'] = A2['bce_target_thresh']
    elif values['loss'] != 'bce' and values['bce_target_thresh'] is not None:
        raise UserError("--bce-target-thresh is a setting of --loss bce")
    mixing = (values['mixup'] or 0) > 0 or (values['cutmix'] or 0) > 0
    if not 0 <= values['smoothing'] < 1 or not 0 <= (values['bce_target_thresh'] or 0) < 1:
        raise UserError("--smoothing and --bce-target-thresh must be in [0, 1)")
    if (values['mixup'] or 0) < 0 or (values['cutmix'] or 0) < 0:
        raise UserError("--mixup and --cutmix must be 0 (off) or more")
    if mixing and values['loss'] == 'asl':
        raise UserError("--loss asl takes class indices, but Mixup / CutMix mix them into fractions: use --loss bce "
                        "or ce, or --mixup 0 --cutmix 0")
    if mixing and values['batch_size'] % 2:
        raise UserError(f"--batch-size {values['batch_size']}: Mixup / CutMix mix each batch with its reverse and "
                        f"need an even batch size")


# ----------------------------------------------------------------------------------------------------------
# validate.py, infer.py, export.py.

def inference_settings(values, explicit, **overrides):
    """InferenceSettings of validate.py's, infer.py's or export.py's flags (`overrides`: fields the script fixes,
    e.g. export.py's fp32 on the CPU). With --demo the checkpoint defaults to the demo run's best.pth."""
    given = frozenset(k for k in MODEL_FIELDS if k in explicit)
    model_path = values.get('model_path') or ''
    if values.get('demo') and 'model_path' not in explicit:  # what train.py --demo (train_zsl_nus.py --demo) wrote
        model_path = os.path.join('outputs', 'demo_zsl' if values.get('zsl') else 'demo', 'best.pth')
    fields = dict(model=ModelConfig.from_dict(values), given=given, model_path=model_path,
                  unsafe_load=values.get('unsafe_load', False), device=values.get('device', 'cpu'),
                  precision=values.get('precision', 'fp32'), fold_norms=values.get('fold_norms', True),
                  calibration_data=values.get('calibration_data') or '', task=values.get('task', 'auto'),
                  speed=speed_settings(values), uint8_batches=values.get('uint8_batches', True))
    fields.update(overrides)
    return InferenceSettings(**fields)
