"""Every flag of every script, grouped as a user thinks of them: data, model, training, evaluation, output, and
the speed switches last.

Each script's parser is built here (`train_parser`, `zsl_parser`, `validate_parser`, `infer_parser`,
`export_parser`); `parse` gives the values as a plain dict and the set of flags the user typed, which
src_files/cli/resolve.py turns into frozen settings. Every parser shows each flag's default in --help, takes
each flag's underscore spelling too (`--model_name` for `--model-name`, as in the published commands), and
reports a mistyped flag in one line naming the closest known one.
"""
import argparse
import os
import sys

import torch

from src_files.data.formats import FORMATS
from src_files.export.onnx_export import DEFAULT_OPSET, EXPORTERS
from src_files.export.parity import MAX_CHECK_IMAGES, TOLERANCE
from src_files.inference.predictions import LIST_EXTENSIONS
from src_files.models.compile import COMPILE_MODES
from src_files.settings import MULTI, SINGLE

_UNSET = object()

# --demo: small, fast settings on the built-in demo data. The colour-changing RandAugment operations (Invert,
# Solarize, Posterize, Color) would contradict the demo's colour classes, so the demo trains without augmentation,
# and with a faster EMA than 0.9997 since it runs only 150 steps.
DEMO = dict(model_name='tresnet_m', image_size=64, batch_size=32, epochs=6, lr=1e-3, no_aug=True, ema_decay=0.99)
DEMO_OUTPUT = {'train.py': 'outputs/demo', 'train_zsl_nus.py': 'outputs/demo_zsl'}

# A2 ("ResNet strikes back"), from timm's parts: the values --recipe a2 gives the flags left unset.
A2 = dict(opt='lamb', weight_decay=0.02, warmup_epochs=5, mixup=0.1, cutmix=1.0, aug_repeats=3,
          rand_aug='rand-m7-mstd0.5-inc1', bce_target_thresh=0.2, drop_path=0.05, smoothing=0.0)
A2_LR, A2_LR_BATCH = 4e-3, 256  # lr per A2_LR_BATCH images of the global batch (--batch-size x processes)
A2_ONLY = ('opt', 'warmup_epochs', 'mixup', 'cutmix', 'aug_repeats', 'rand_aug', 'drop_path')
RECIPE_KEYS = ('recipe', 'loss', 'smoothing', 'bce_target_thresh') + A2_ONLY


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that accepts `--a_b` (and `--a_b=value`) for each known flag `--a-b`, and reports a bad
    command line in one line (exit code 2, as argparse) instead of the usage text."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._dashed(args), namespace)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return parsed

    def error(self, message):
        self.exit(2, f"error: {message}\n")

    def _dashed(self, argv):
        out = list(argv)
        for i, token in enumerate(out):
            if token == '--':  # what follows is not a flag
                break
            flag, equals, value = token.partition('=')
            dashed = flag.replace('_', '-')
            if flag.startswith('--') and flag not in self._option_string_actions and \
                    dashed in self._option_string_actions:
                out[i] = dashed + equals + value
        return out

    def _unrecognized(self, extras):
        """'unrecognized argument --modle-name; did you mean --model-name?' (each unknown flag, with its closest
        known flags where one is close)."""
        flags = [token.split('=', 1)[0] for token in extras if token.startswith('-') and token != '--'] or extras
        known = [option for option in self._option_string_actions if option.startswith('--')]
        named = [(flag, closest_flags(flag.replace('_', '-'), known)) for flag in flags]
        if len(named) == 1:
            flag, guesses = named[0]
            return f"unrecognized argument {flag}; " + (f"did you mean {' or '.join(guesses)}?" if guesses
                                                        else "see --help")
        return "unrecognized arguments " + ', '.join(
            flag + (f" (did you mean {' or '.join(guesses)}?)" if guesses else '') for flag, guesses in named) + \
            "; see --help"


def edit_distance(a, b):
    """Levenshtein distance: the fewest single-character insertions, deletions and substitutions from a to b."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def closest_flags(flag, known, most=3):
    """The known flags a mistyped `flag` may have meant: those it is the start of (an abbreviation, which the
    parsers do not accept: a later flag could change what it means), then those within a few edits of it (about
    one per four characters, at least 2); [] when none is close."""
    name = flag.lstrip('-')
    longer = sorted(option for option in known if len(name) >= 3 and option.lstrip('-').startswith(name))
    distances = {option: edit_distance(name, option.lstrip('-')) for option in known}
    best = min(distances.values(), default=None)
    near = sorted(option for option, d in distances.items() if best is not None and d == best <= max(2, len(name) // 4))
    return list(dict.fromkeys(longer + near))[:most]


def make_parser(description):
    return Parser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False,
                  epilog="Each flag may also be spelled with underscores, e.g. --model_name=tresnet_l; flags are "
                         "never abbreviated.")


def parse(parser, argv=None):
    """(values, explicit): the parsed flags as a dict, and the set of flags the user gave on the command line."""
    args = parser.parse_args(argv)
    dests = {a.dest for a in parser._actions if a.dest not in ('help', argparse.SUPPRESS)}
    probe = argparse.Namespace(**{d: _UNSET for d in dests})
    parser.parse_args(argv, namespace=probe)
    explicit = frozenset(d for d in dests if getattr(probe, d) is not _UNSET)
    return dict(vars(args)), explicit


def flag_name(key):
    return '--' + key.replace('_', '-')


def default_device():
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def default_workers():
    """This process's share of the usable CPU cores (torchrun starts LOCAL_WORLD_SIZE processes per machine),
    at most 16: the published train transform runs on the CPU, and a fast GPU needs many processes for it."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    per_process = cores // max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1') or 1))
    return max(1, min(16, per_process))


# ----------------------------------------------------------------------------------------------------------
# Flag groups.

def add_data_flags(g, training):
    g.add_argument('--data-format', choices=FORMATS, default='auto',
                   help="layout of --data: multi-label coco (2014 or 2017), voc (VOC2007/2012 or a VOC-format "
                        "export), csv (train.csv + val.csv, train/ + valid/ with a CSV each, or one CSV; one-hot "
                        "or tag lists), yolo (data.yaml or classes.txt, images/, labels/; an image's labels are "
                        "its boxes' classes), openimages (V6 image-level labels); single-label "
                        "cifar100 (cifar-100-python/, the official python version) or imagefolder "
                        "(train/<class>/*, val/<class>/*); auto = from the folder's files")
    g.add_argument('--train-split', default=None, metavar='NAME',
                   help="the split to train on, which also fixes the class list: voc, an ImageSets/Main split "
                        "(default trainval where test.txt exists, else train, or trainval if there is no "
                        "train.txt); csv, a value of the file's split column (default train); yolo, a data.yaml "
                        "key (default train)")
    g.add_argument('--val-split', default=None, metavar='NAME|SHARE',
                   help="the split to score: voc, an ImageSets/Main split (default test where test.txt exists, "
                        "else val); csv, a value of the split column (default val, valid, validation or test, "
                        "the first present); yolo, a data.yaml key (default val). Or, for data that names no "
                        "validation images (one CSV without a split column, VOC without ImageSets/, YOLO without "
                        "val:), the share held out by a hash of each image's path (default 0.1; the same images "
                        "on every run, listed in split.csv of the output folder)")
    g.add_argument('--val-csv', default=None, metavar='FILE.csv',
                   help="csv: the label CSV of the validation images, when --data is (or holds) one CSV of the "
                        "training images")
    g.add_argument('--label-sep', default=None, metavar='SEP',
                   help="csv tag lists: the separator of an image's labels, ';', '|', ',' or space (default: "
                        "detected and named in the data line)")
    if training:
        g.add_argument('--unknown-as-negative', action='store_true', default=False,
                       help="train on unknown labels (VOC difficult objects, labels OpenImages did not verify) as "
                            "negatives, as the published OpenImages recipe did; default: they add nothing to the "
                            "loss")
    when = 'the first step' if training else 'scoring'
    g.add_argument('--check-images', choices=('auto', 'on', 'off'), default='auto',
                   help=f"decode every image once before {when}, so that a corrupt file stops the run there, "
                        f"named, not hours in; auto = on for data of up to 5,000 images")
    g.add_argument('--skip-bad-images', action='store_true', default=False,
                   help="with the check: leave unreadable images out (counted) instead of stopping")


def add_workers_flag(g, help="data-loading processes (0 = load in the main process)"):
    g.add_argument('-j', '--workers', type=int, default=default_workers(), help=help)


def add_model_flags(parser, model_name='tresnet_l', image_size=448, num_of_groups=-1, zsl=0, num_classes_help=None,
                    from_checkpoint=False, model_path_help=None):
    """--model-path, --unsafe-load and the ModelConfig flags. from_checkpoint=True (validate.py, infer.py,
    export.py): the help says that a checkpoint which records a setting fills it in unless the flag is given."""
    g = parser.add_argument_group('model', (
        "flags not given are read from the checkpoint: what it records (a best.pth), else what its weights show "
        "(backbone, head) and, for a model-zoo file, the zoo's image size for that backbone" if from_checkpoint else
        "with --model-path FILE, --model-name, --image-size and the head flags not given are read from FILE: what "
        "a best.pth records, else the backbone its weights show and the model zoo's image size for it"))
    g.add_argument('--model-path', default='' if model_path_help is None else None,
                   help=model_path_help or (
                       "pretrained weights to start from, e.g. an ImageNet-21K backbone: its plain classifier "
                       "(head.fc) and head tensors of another shape are skipped, an ML-Decoder head of the same "
                       "shape is loaded (as published); '' = random initialisation"))
    g.add_argument('--unsafe-load', action='store_true', default=False,
                   help="unpickle the --model-path file in full, which runs any code it holds: only for a trusted "
                        "file that pickles more than tensors, numbers, strings, argparse Namespaces and numpy "
                        "values (without it such a file is refused)")
    g.add_argument('--model-name', default=model_name,
                   help="backbone: tresnet_m, tresnet_l, tresnet_xl or a timm model name")
    g.add_argument('--num-classes', type=int, default=None,
                   help=num_classes_help or "number of classes (None = the dataset's / checkpoint's count)")
    g.add_argument('--image-size', type=int, default=image_size, help="input images are resized to this square")
    g.add_argument('--use-ml-decoder', type=int, default=1, choices=(0, 1),
                   help="1: ML-Decoder head; 0: global average pooling + fully-connected layer")
    g.add_argument('--num-of-groups', type=int, default=num_of_groups,
                   help="ML-Decoder query groups (-1 = min(100, num classes))")
    g.add_argument('--decoder-embedding', type=int, default=768, help="ML-Decoder embedding width")
    g.add_argument('--zsl', type=int, default=zsl, choices=(0, 1),
                   help="1: zero-shot head whose queries are the classes' word vectors")
    return g


def add_device_flag(g):
    g.add_argument('--device', default=default_device(),
                   help="cpu, cuda or cuda:N (the default is cuda when a GPU is visible)")


def add_threshold_flag(g, help):
    """--thr (validate.py's name), --th (infer.py's) and --threshold: the same probability threshold."""
    g.add_argument('--thr', '--th', '--threshold', dest='thr', type=float, default=0.75, help=help)


def add_task_flag(g):
    g.add_argument('--task', choices=('auto', MULTI, SINGLE), default='auto',
                   help="how the model's outputs are read: single-label = softmax over the classes (top-1 / "
                        "top-5, the best classes with their probabilities), multi-label = a sigmoid per class; "
                        "auto = what the checkpoint records (train.py's best.pth does), else the kind of --data "
                        "(validate.py), else multi-label")


def add_speed_flags(parser, training):
    """Switches that change speed or memory, never the math; channels-last, fused Adam and cuDNN autotuning act
    only on CUDA; --head-impl, --lowmem and --compile act on CPUs too (the same code runs there)."""
    g = parser.add_argument_group('speed and memory (each can be switched off; channels-last' +
                                  (', fused Adam' if training else '') + ' and cuDNN autotuning act only on CUDA)')
    g.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=True,
                   help="channels-last memory format for the model and its inputs")
    g.add_argument('--head-impl', choices=('fast', 'published'), default='fast',
                   help="ML-Decoder head: one batched group-FC matmul and fused attention, or the published "
                        "per-group loop (same numbers)")
    if training:
        g.add_argument('--fused-optimizer', action=argparse.BooleanOptionalAction, default=True,
                       help="Adam with fused=True")
        g.add_argument('--lowmem', action=argparse.BooleanOptionalAction, default=False,
                       help="memory-saving backward with the same math: InPlaceABN-style norms keep only their "
                            "output and squeeze-excite products are recomputed instead of kept")
    g.add_argument('--uint8-batches', action=argparse.BooleanOptionalAction, default=True,
                   help="on CUDA, the loader processes send the images as uint8 and the GPU scales them to [0, 1] "
                        "(the same values as on the CPU): a quarter of the bytes to copy, and less CPU work per image")
    g.add_argument('--cudnn-benchmark', action=argparse.BooleanOptionalAction, default=True,
                   help="let cuDNN pick the fastest convolution algorithms")
    g.add_argument('--compile', action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile the model (its first step compiles; that time is reported)")
    g.add_argument('--compile-scope', choices=('full', 'regional'), default='full',
                   help="with --compile: the whole model as one graph, or each distinct TResNet block compiled "
                        "once and reused (see BENCHMARKS.md)")
    g.add_argument('--compile-mode', choices=COMPILE_MODES, default='default',
                   help="with --compile: torch.compile's mode, where reduce-overhead replays CUDA graphs (one "
                        "launch per graph instead of one per kernel; single process only) and max-autotune also "
                        "times kernel choices (a long compile)")
    return g


def add_inference_speed_flags(parser):
    g = add_speed_flags(parser, training=False)
    g.add_argument('--fold-norms', action=argparse.BooleanOptionalAction, default=True,
                   help="fold the norm layers into the convolutions (same outputs, faster)")
    g.add_argument('--precision', choices=('fp32', 'fp16', 'bf16', 'int8'), default='fp32',
                   help="dtype of the weights and inputs: fp32 = the exact model, on every device and for any number "
                        "of images; faster and approximate: fp16 (the published GPU path), bf16, or int8 on a CPU "
                        "(ONNX Runtime, calibrated once per checkpoint and cached, checked against fp32: "
                        "src_files/export/cpu_int8.py; BENCHMARKS.md gives its speed and how many labels it changes)")
    g.add_argument('--calibration-data', default='', metavar='DIR',
                   help="int8: calibrate on images of this folder (default: images spread over the ones scored; "
                        "only pixels are read)")
    g.add_argument('--autotune-gemms', action=argparse.BooleanOptionalAction, default=False,
                   help="with --compile: run the 1x1 convolutions as matrix products, each timed as cuBLAS and as "
                        "Triton kernels that also apply the bias, activation and residual after it, and keep the "
                        "fastest (longer compile; see BENCHMARKS.md)")
    return g


def add_recipe_flags(parser):
    g = parser.add_argument_group('recipe (--recipe a2 fills every flag below left unset with its A2 value)')
    g.add_argument('--recipe', choices=('published', 'a2'), default='published',
                   help="published: Adam + OneCycle + ASL (the paper's recipe); a2: timm's ImageNet A2 recipe "
                        "(LAMB, cosine, RandAugment, Mixup/CutMix, repeated augmentation, BCE, drop path; with "
                        f"--lr unset, lr {A2_LR:g} x global batch / {A2_LR_BATCH}; --weight-decay unset: "
                        f"{A2['weight_decay']})")
    unset = argparse.SUPPRESS  # (each help names its default: the recipe's or the task's)
    g.add_argument('--loss', choices=('asl', 'ce', 'bce'), default=unset,
                   help="single-label data: asl (the published single-label ASL, gamma_neg 4, label smoothing "
                        "--smoothing), ce (cross-entropy) or bce (timm's BinaryCrossEntropy); multi-label data always "
                        "trains with the published ASL (default: asl; bce with --recipe a2)")
    g.add_argument('--smoothing', type=float, default=unset,
                   help="label smoothing of the single-label loss (default: 0.1; 0 with --recipe a2, as A2)")
    g.add_argument('--bce-target-thresh', type=float, default=unset,
                   help=f"--loss bce: targets above this count as 1 (default: none; {A2['bce_target_thresh']} with "
                        f"--recipe a2)")
    g.add_argument('--opt', default=unset, help=f"a2: timm optimizer name (default: {A2['opt']})")
    g.add_argument('--warmup-epochs', type=int, default=unset,
                   help=f"a2: warm-up epochs of the cosine schedule (default: {A2['warmup_epochs']})")
    g.add_argument('--mixup', type=float, default=unset,
                   help=f"a2: Mixup alpha, 0 = off (default: {A2['mixup']} on single-label data, 0 on multi-label)")
    g.add_argument('--cutmix', type=float, default=unset,
                   help=f"a2: CutMix alpha, 0 = off (default: {A2['cutmix']} on single-label data, 0 on "
                        f"multi-label)")
    g.add_argument('--aug-repeats', type=int, default=unset,
                   help=f"a2: repeated augmentation, each image this many times per epoch, 1 = off (default: "
                        f"{A2['aug_repeats']})")
    g.add_argument('--rand-aug', default=unset,
                   help=f"a2: timm RandAugment string, or none (default: {A2['rand_aug']})")
    g.add_argument('--drop-path', type=float, default=unset,
                   help=f"a2: drop-path rate of timm backbones that take one (default: {A2['drop_path']}; 0 for "
                        f"TResNet, which has none)")


# ----------------------------------------------------------------------------------------------------------
# The scripts' parsers.

def _training_parser(description, script, *, data, data_help, model_name, image_size, batch_size, lr,
                     weight_decay, num_of_groups, zsl, output_dir, num_classes_help, num_of_groups_help=None):
    """The flags train.py and train_zsl_nus.py share, with the published defaults of each."""
    parser = make_parser(description)
    g = parser.add_argument_group('data')
    g.add_argument('--data', default=data, help=data_help)
    if script == 'train.py':
        add_data_flags(g, training=True)
    add_workers_flag(g, help="data-loading processes per training process (0 = load in the main process)")
    g = add_model_flags(parser, model_name=model_name, image_size=image_size, num_of_groups=num_of_groups, zsl=zsl,
                        num_classes_help=num_classes_help)
    if num_of_groups_help:
        next(a for a in g._group_actions if a.dest == 'num_of_groups').help = num_of_groups_help
    g = parser.add_argument_group('training')
    g.add_argument('--epochs', type=int, default=40, help="training epochs (the OneCycle schedule spans them)")
    g.add_argument('--batch-size', type=int, default=batch_size, help="images per step and process")
    g.add_argument('--lr', type=float, default=lr, help="maximum learning rate of the OneCycle schedule")
    g.add_argument('--weight-decay', type=float, default=weight_decay,
                   help="L2 weight decay of Adam on weights with 2+ dims that are not biases")
    g.add_argument('--ema-decay', type=float, default=0.9997, help="decay of the EMA of the weights")
    g.add_argument('--amp', choices=('auto', 'fp16', 'bf16', 'off'), default='auto',
                   help="mixed precision: fp16 with loss scaling (published), bf16, or off; auto = bf16 on GPUs "
                        "that support it, else fp16, and off on CPU")
    g.add_argument('--no-aug', action='store_true', default=False,
                   help="train on resized images only (no Cutout / RandAugment)")
    g.add_argument('--aug', dest='no_aug', action='store_false', default=argparse.SUPPRESS,
                   help="train with Cutout + RandAugment even where --demo turns them off (default: as --no-aug "
                        "says)")
    g.add_argument('--seed', type=int, default=0, help="seed of the initialisation, data order and augmentation")
    add_device_flag(g)
    if script == 'train.py':
        add_recipe_flags(parser)
    add_query_flags(parser, script)
    g = parser.add_argument_group('output and resuming')
    g.add_argument('--output-dir', default=None,
                   help=f"folder for latest.pth, best.pth, metrics.csv and curves.png (default: {output_dir})")
    g.add_argument('--resume', nargs='?', const='', default=None, metavar='PATH',
                   help="continue the run in --output-dir from its latest.pth (or the latest.pth or run folder "
                        "given); --resume auto: continue if --output-dir holds a run, else start one (the same "
                        "command for every start of a job: SLURM requeues, torchrun --max-restarts)")
    g.add_argument('--stop-after', type=int, default=0, metavar='N',
                   help="stop (cleanly) after N epochs of this invocation, to continue later with --resume "
                        "(0 = run to --epochs)")
    g.add_argument('--no-memory-check', action='store_true', default=False,
                   help="skip the estimate of the peak memory made before the first step (on the CPU a run that "
                        "would not fit stops there with a batch size that does)")
    demo = dict(DEMO, output_dir=DEMO_OUTPUT[script])
    g.add_argument('--demo', action='store_true', default=False,
                   help="train on the built-in demo dataset (made on first use) with small, fast settings: " +
                        ', '.join(flag_name(k) + ('' if v is True else f" {v}") for k, v in demo.items()) +
                        " (flags given explicitly win)")
    add_speed_flags(parser, training=True)
    return parser


def train_parser(description):
    return _training_parser(
        description, 'train.py', data='data/coco', model_name='tresnet_l', image_size=448, batch_size=56, lr=1e-4,
        weight_decay=1e-4, num_of_groups=-1, zsl=0, output_dir='outputs/<name of the --data folder>',
        data_help="dataset folder (its layout is detected, or given with --data-format; see Datasets.md)",
        num_classes_help="number of classes (None = as many as the data has)")


def zsl_parser(description):
    return _training_parser(
        description, 'train_zsl_nus.py', data='data/nus_wide', model_name='tresnet_l', image_size=224,
        batch_size=56, lr=1e-4, weight_decay=1e-2, num_of_groups=None, zsl=1, output_dir='outputs/<name of the --data folder>_zsl',
        data_help="NUS-WIDE folder (see Datasets.md)",
        num_classes_help="number of training classes (None = the seen classes of benchmark_81_v0.json: 925 on "
                         "NUS-WIDE)",
        num_of_groups_help="ML-Decoder query groups (None = the number of seen classes, as published)")


def _checkpoint_model_flags(parser, help):
    add_model_flags(parser, num_classes_help="number of classes (None = from the checkpoint)", from_checkpoint=True,
                    model_path_help=help)


def validate_parser(description):
    parser = make_parser(description)
    g = parser.add_argument_group('data')
    g.add_argument('--data', default='data/coco',
                   help="dataset folder (COCO, VOC, CSV, OpenImages, ImageFolder or CIFAR-100 layout, see "
                        "--data-format); with --zsl 1 the NUS-WIDE zsl folder")
    add_data_flags(g, training=False)
    add_workers_flag(g)
    g.add_argument('--demo', action='store_true', default=False,
                   help="validate on the built-in demo dataset (the one train.py --demo trains on); the model "
                        "defaults to outputs/demo/best.pth (with --zsl 1: outputs/demo_zsl/best.pth)")
    _checkpoint_model_flags(parser, "checkpoint to score, a local file (nothing is downloaded); required unless "
                                    "--demo")
    g = parser.add_argument_group('evaluation')
    add_task_flag(g)
    g.add_argument('--batch-size', type=int, default=48, help="images per forward pass")
    add_threshold_flag(g, help="probability threshold of CP, CR, CF1, OP, OR, OF1")
    add_device_flag(g)
    g = parser.add_argument_group('output')
    g.add_argument('--save-scores', default='', metavar='FILE.csv',
                   help="also write every validation image's probabilities: header image,<class names>, one "
                        "row per image (its path relative to --data, or its OpenImages ImageID)")
    g.add_argument('--json', default='', metavar='PATH', help="also write the metrics to this JSON file")
    g.add_argument('--report', default='', metavar='DIR',
                   help="also write a per-class report to this folder: per_class.csv (AP, F1-optimal "
                        "threshold, precision/recall/F1), summary.json, thresholds.json (for infer.py "
                        "--thresholds) and pr_curves.png; on single-label data per_class.csv (top-1 / top-5 per "
                        "class, the class it is most taken for), summary.json and confusion.png")
    g = parser.add_argument_group('zero-shot checkpoints')
    add_text_encoder_flags(g, " (default: the one the checkpoint records; a zero-shot checkpoint scores the data's "
                              "class names through it)")
    add_inference_speed_flags(parser)
    return parser


def infer_parser(description, demo_images):
    parser = make_parser(description)
    g = parser.add_argument_group('images')
    g.add_argument('--pic-path', default=None,
                   help="an image, a folder (searched recursively for image files, in sorted order), or a "
                        f"text file ({', '.join(LIST_EXTENSIONS)}) listing image paths one per line, relative "
                        "to its folder; required unless --demo")
    g.add_argument('--demo', action='store_true', default=False,
                   help=f"label the first {demo_images} images of the built-in demo dataset's val2014 folder "
                        f"with the model train.py --demo writes (outputs/demo/best.pth); --model-path and "
                        f"--pic-path, if given, win")
    add_workers_flag(g, help="image-loading processes (0 = load in the main process)")
    _checkpoint_model_flags(parser, "checkpoint, a local file (nothing is downloaded); required unless --demo")
    g = parser.add_argument_group('labels')
    add_threshold_flag(g, help="report classes whose probability exceeds this")
    g.add_argument('--thresholds', default=None, metavar='FILE',
                   help="per-class thresholds: a JSON object {class name: threshold in [0, 1]}; classes it "
                        "leaves out use --thr")
    g.add_argument('--top-k', type=int, default=20,
                   help="report at most this many classes per image (the best that pass the threshold); "
                        "single-label models: 5 unless given")
    add_task_flag(g)
    g.add_argument('--batch-size', type=int, default=32, help="images per forward pass (folders)")
    add_device_flag(g)
    g = parser.add_argument_group('output')
    g.add_argument('--output', default=None, metavar='FILE',
                   help="write every image's labels and scores to FILE, .csv (image,labels,scores with "
                        "';'-joined lists) or .json (a list of {image, labels, scores}); shows a progress bar "
                        "instead of a line per image")
    g.add_argument('--save-path', default='',
                   help="write the image(s) with their labels drawn here: a file for one image, a folder "
                        "for a folder ('' = do not save)")
    g.add_argument('--save-attention', default=None, metavar='DIR',
                   help="write one PNG per image to DIR: the image beside the ML-Decoder cross-attention map "
                        "of each predicted class's query")
    add_vocabulary_flags(parser, "")
    add_inference_speed_flags(parser)
    return parser


def add_text_encoder_flags(g, use):
    g.add_argument('--text-encoder', default=None, metavar='SPEC',
                   help="class names -> query vectors, from local files only: a word-vector file (.vec / .txt, "
                        "GloVe or fastText; a name is the mean of its words), a matrix (.pth / .npy, one vector per "
                        "class of --text-names), open_clip:FOLDER (an open_clip model folder: its config and "
                        "weights) or open_clip:ARCH:FILE" + use)
    g.add_argument('--text-names', default=None, metavar='FILE',
                   help="with a matrix --text-encoder: its classes, one per line, a JSON list, or NUS-WIDE's "
                        "benchmark_81_v0.json")
    g.add_argument('--prompts', default=None, metavar='FILE',
                   help="with an open_clip --text-encoder: templates averaged, one per line with {} for the name "
                        "(default: 'a photo of a {}.' and six more)")


def add_query_flags(parser, script):
    g = parser.add_argument_group('zero-shot queries')
    add_text_encoder_flags(g, " (train_zsl_nus.py default: the folder's wordvec_array.pth, as published)"
                           if script == 'train_zsl_nus.py' else "; with --zsl 1 (needed)")
    g.add_argument('--query-noise', type=float, default=0.0, metavar='S',
                   help="zero-shot query augmentation: add Gaussian noise of S x the vectors' RMS to the query "
                        "vectors at each training step (0 = off, the published recipe; BENCHMARKS.md measures it)")
    g.add_argument('--query-drop', type=float, default=0.0, metavar='P',
                   help="zero-shot query augmentation: leave each class's query out of a training step with "
                        "probability P (0 = off, the published recipe)")


def add_vocabulary_flags(parser, use, classes=True):
    """--wordvecs / --class-names: the classes a zero-shot checkpoint scores (`use`: what the script does with
    them)."""
    g = parser.add_argument_group('zero-shot checkpoints')
    g.add_argument('--wordvecs', default=None, metavar='FILE',
                   help="zero-shot checkpoints (--zsl 1): word vectors of the classes to score, [300, n] or "
                        "[n, 300] saved with torch.save (e.g. NUS-WIDE's wordvec_array.pth; default: the ones a "
                        "best.pth of train_zsl_nus.py records, every class of its data)" + use)
    g.add_argument('--class-names', default=None, metavar='FILE',
                   help="with --wordvecs: names of its n classes, a text file (one per line), a JSON list, or "
                        "NUS-WIDE's benchmark_81_v0.json (None = the checkpoint's names if n fits, else 0..n-1)")
    if classes:
        g.add_argument('--classes', default=None, metavar='"A,B,..."',
                       help="zero-shot checkpoints: score these classes, given only as names (comma-separated), "
                            "through the text encoder the checkpoint records (or --text-encoder)")
        g.add_argument('--classes-file', default=None, metavar='FILE',
                       help="as --classes, the names one per line (or a JSON list)")
    add_text_encoder_flags(g, " (default: the one the checkpoint records)")


def app_parser(description):
    parser = make_parser(description)
    _checkpoint_model_flags(parser, "checkpoint to serve: a best.pth, latest.pth, model-zoo file or an exported "
                                    ".onnx / .pt2 (no attention maps); required unless --demo")
    g = parser.add_argument_group('labels')
    g.add_argument('--demo', action='store_true', default=False,
                   help="serve the demo checkpoint, outputs/demo/best.pth (trained first with train.py --demo if "
                        "missing), with demo images as examples")
    add_threshold_flag(g, help="the threshold slider's starting value")
    g.add_argument('--thresholds', default=None, metavar='FILE',
                   help="per-class thresholds (validate.py --report's thresholds.json): a 'use tuned thresholds' box")
    g.add_argument('--top-k', type=int, default=20, help="show at most this many labels per image")
    add_device_flag(g)
    g = parser.add_argument_group('zero-shot checkpoints')
    add_text_encoder_flags(g, " (default: the one the checkpoint records)")
    g = parser.add_argument_group('server')
    g.add_argument('--host', default='127.0.0.1', help="address to serve on (127.0.0.1: this machine only)")
    g.add_argument('--port', type=int, default=7860, help="port to serve on")
    g.add_argument('--max-file-size', default='25mb', help="largest upload accepted (Gradio's size string)")
    add_inference_speed_flags(parser)
    return parser


def export_parser(description):
    parser = make_parser(description)
    _checkpoint_model_flags(parser, "checkpoint to export (any file validate.py reads: best.pth, latest.pth, a "
                                    "model-zoo file, a bare state dict); required")
    add_vocabulary_flags(parser, "; baked into the file, which then takes only images")
    g = parser.add_argument_group('output')
    g.add_argument('--format', choices=('onnx', 'pt2'), default='onnx',
                   help="onnx: an ONNX file with the weights inside; pt2: a torch.export ExportedProgram "
                        "(torch.export.save)")
    g.add_argument('--output', default=None, metavar='FILE',
                   help="file to write (replaced if it exists; None = the checkpoint's path with .onnx / .pt2)")
    g.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                   help="ONNX opset; dynamo exporter: 18-23 (opset 18 writes the head's attention as MatMul + "
                        "Softmax, which every ONNX runtime runs; 23 as one Attention node, which recent ONNX "
                        "Runtimes run: 1.32 tested); torchscript exporter: 9-20")
    g.add_argument('--exporter', choices=EXPORTERS, default='dynamo',
                   help="ONNX exporter: torch.onnx's dynamo exporter (torch.export + onnxscript), or the "
                        "legacy TorchScript one (deprecated in PyTorch; same numbers, needs no onnxscript)")
    g = parser.add_argument_group('checks and int8')
    g.add_argument('--check-images', default=None, metavar='DIR',
                   help=f"also compare the logits on the first {MAX_CHECK_IMAGES} images of this folder (or "
                        f"image list), transformed as validate.py does")
    g.add_argument('--precision', choices=('fp32', 'int8'), default='fp32', dest='file_precision',
                   help="onnx: fp32, or int8 (ONNX Runtime static quantization: int8 weights per channel, "
                        "uint8 activations calibrated on --calibration-data; for CPUs with VNNI)")
    g.add_argument('--calibration-data', default=None, metavar='DIR',
                   help="--precision int8: a folder of images to calibrate on (32 spread over its sorted "
                        "files); the int8 probabilities must stay within 0.01 on average and 0.15 at most of "
                        "PyTorch's on them and on --check-images, else no file is written")
    g.add_argument('--tolerance', type=float, default=TOLERANCE,
                   help="largest allowed max |exported - PyTorch logit| / max |PyTorch logit|: 1e-4 for fp32; "
                        "above it the export is an error")
    return parser
