"""End-to-end tests of train.py, train_zsl_nus.py, validate.py and infer.py on CPU, on tiny generated data.

One training run (2 epochs) is shared by the tests of validate.py, infer.py and resume; it and most other runs call
the scripts' main() in this process (through the same run_main the scripts use) to save start-up time; the tests
of a script as its own process (torchrun, --help, the exit status the shell sees) start it as a user would.
"""
import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import infer
import train
import train_zsl_nus
import app
import export
import validate
from src_files.data import demo_coco_root, demo_nus_root
from src_files.cli import run
from tests.script_calls import assert_user_error, call_main  # noqa: F401 (used by other test modules too)

pytestmark = pytest.mark.slow  # (the whole module: `pytest -m "not slow"` leaves it out)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ['--model-name', 'tresnet_m', '--image-size', '64', '--batch-size', '8', '--workers', '0', '--lr', '1e-3']


def _env(tmp_dir):
    env = dict(os.environ)
    env['ML_DECODER_DEMO_DIR'] = str(tmp_dir)
    env['PYTHONPATH'] = ROOT
    return env


def run_script(script, args, tmp_dir, timeout=300, extra_env=None, prefix=None):
    """Run a script as a user would; returns (returncode, stdout, stderr)."""
    env = _env(tmp_dir)
    env.update(extra_env or {})
    cmd = (prefix or [sys.executable]) + [os.path.join(ROOT, script)] + [str(a) for a in args]
    proc = subprocess.run(cmd, cwd=str(tmp_dir), env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr






@pytest.fixture(scope='module')
def work(tmp_path_factory):
    return tmp_path_factory.mktemp('scripts')


@pytest.fixture(scope='module')
def coco(work):
    return demo_coco_root(cache_dir=str(work / 'demo'), num_train=24, num_val=15)


@pytest.fixture(scope='module')
def nus(work):
    return demo_nus_root(cache_dir=str(work / 'demo'), num_train=24, num_val=16)


@pytest.fixture(scope='module')
def trained(work, coco):
    """train.py for 2 epochs straight: the run that validate/infer/resume tests use (in this process, as call_main
    runs it; a module's fixture has no capfd)."""
    out = work / 'straight'
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            pytest.raises(SystemExit) as exit_info:
        run.run_main(train.main, [str(a) for a in ['--data', coco, '--epochs', 2, '--output-dir', out] + SMALL])
    assert exit_info.value.code == 0, stderr.getvalue()
    return out, stdout.getvalue()


def test_train_writes_checkpoints_metrics_and_plot(trained):
    out, stdout = trained
    lines = [line for line in stdout.splitlines() if line.startswith('epoch ')]
    assert len(lines) == 2 and lines[1].startswith('epoch 2/2 loss ') and ' mAP_ema ' in lines[1]
    assert ' best ' in lines[1] and re.search(r'img/s, \d+% waiting for data, \d+ s eval\)$', lines[1]), lines[1]
    for name in ('latest.pth', 'best.pth', 'metrics.csv', 'curves.png'):
        assert (out / name).is_file(), name
    assert not [n for n in os.listdir(out) if n.endswith('.tmp')]
    rows = (out / 'metrics.csv').read_text().splitlines()
    assert rows[0].startswith('epoch,loss,mAP,mAP_ema,best') and len(rows) == 3
    waits = [float(row['data_wait']) for row in csv.DictReader(rows)]
    assert all(0 <= wait < 1 for wait in waits), waits
    best = torch.load(out / 'best.pth', weights_only=True)
    assert set(best) >= {'model', 'idx_to_class'} and best['idx_to_class'][0] == 'red circle'
    assert len(best['model']) == 451  # TResNet-M + ML-Decoder, the model-zoo layout
    latest = torch.load(out / 'latest.pth', weights_only=True)
    assert latest['epoch'] == 2 and latest['global_step'] == 6
    assert {'model', 'ema', 'optimizer', 'scheduler', 'rng', 'args', 'best', 'class_names'} <= set(latest)


def test_a_finished_run_is_extended_by_fine_tuning_from_its_best_weights(trained, coco, work, capfd):
    """--resume --epochs N on a finished run: one line with the command that trains on from its best.pth into a new
    folder; that command runs as printed, taking the model settings from best.pth (no model flag in it)."""
    import shlex
    out, _ = trained
    code, _, err = call_main(train, ['--resume', '--output-dir', out, '--epochs', 3], capfd)
    line = assert_user_error(code, err, f'the run in {out} finished its 2 epochs', 'run: python train.py')
    command = shlex.split(line.split('run: ', 1)[1])
    assert command[:2] == ['python', 'train.py'] and '--model-name' not in command and '--image-size' not in command
    given = dict(zip(command[2::2], command[3::2]))
    assert given['--model-path'] == str(out / 'best.pth') and given['--epochs'] == '1'
    assert given['--batch-size'] == '8' and float(given['--lr']) == 1e-3 and given['--data'] == str(coco)
    code, stdout, stderr = call_main(train, command[2:] + ['--workers', 0], capfd)
    assert code == 0, stderr
    assert re.search(r'settings from \S+best.pth: model_name=tresnet_m, image_size=64', stdout), stdout
    extended = torch.load(Path(given['--output-dir']) / 'best.pth', weights_only=True)
    assert extended['meta']['model_name'] == 'tresnet_m' and extended['meta']['image_size'] == 64
    # a flag given explicitly wins over the record, with a note
    code, stdout, stderr = call_main(train, command[2:-2] + ['--output-dir', work / 'extended_96', '--workers', 0,
                                                             '--image-size', 96, '--stop-after', 1], capfd)
    assert code == 0 and 'records --image-size 64; using --image-size 96 as given' in stdout, stdout + stderr


def test_validate_on_best(trained, coco, work, capfd):
    out, _ = trained
    best = torch.load(out / 'best.pth', weights_only=True)
    report = work / 'metrics.json'
    code, stdout, stderr = call_main(validate, ['--model-path', out / 'best.pth', '--data', coco, '--workers', 0,
                                                '--json', report], capfd)
    assert code == 0, stderr
    mAP_line = [line for line in stdout.splitlines() if line.startswith('mAP ')][0]
    assert float(mAP_line.split()[1]) == pytest.approx(best['meta']['mAP'], abs=0.01)
    assert ' CF1 ' in stdout and ' OF1 ' in stdout
    import json
    data = json.loads(report.read_text())
    assert {'mAP', 'CP', 'CR', 'CF1', 'OP', 'OR', 'OF1'} <= set(data)
    assert 'warning' not in stdout


def test_validate_matches_classes_by_name_when_the_order_differs(trained, coco, work, capfd):
    """Class names of the checkpoint in another order than the data's categories: matched by name, with a note."""
    out, _ = trained
    best = torch.load(out / 'best.pth', weights_only=True)
    names = best['idx_to_class']
    torch.save(dict(best, idx_to_class={i: names[len(names) - 1 - i] for i in names}), work / 'reversed.pth')
    code, stdout, stderr = call_main(validate, ['--model-path', work / 'reversed.pth', '--data', coco,
                                                '--workers', 0], capfd)
    assert code == 0 and 'matched by class name' in stdout, stdout + stderr


def test_validate_scores_a_training_checkpoint(trained, coco, capfd):
    """latest.pth (training state) scores too: model name, image size and class names come from its run."""
    out, _ = trained
    code, stdout, stderr = call_main(validate, ['--model-path', out / 'latest.pth', '--data', coco, '--workers', 0],
                                     capfd)
    assert code == 0 and 'is a training checkpoint' in stdout and 'tresnet_m 64px' in stdout, stdout + stderr
    assert 'warning' not in stdout


def test_validate_demo_finds_the_demo_run(trained, coco, work, capfd, monkeypatch):
    """validate.py --demo finds what train.py --demo wrote (outputs/demo/best.pth) without --model-path."""
    out, _ = trained
    code, stdout, _ = call_main(validate, ['--model-path', out / 'best.pth', '--data', coco, '--workers', 0], capfd)
    mAP_line = [line for line in stdout.splitlines() if line.startswith('mAP ')][0]
    (work / 'outputs' / 'demo').mkdir(parents=True, exist_ok=True)
    shutil.copy(out / 'best.pth', work / 'outputs' / 'demo' / 'best.pth')
    monkeypatch.chdir(work)
    code, stdout, stderr = call_main(validate, ['--demo', '--data', coco, '--workers', 0], capfd)
    assert code == 0 and mAP_line in stdout, stdout + stderr


def test_infer_labels_a_folder(trained, coco, work, capfd):
    out, _ = trained
    pics = os.path.join(coco, 'val2014')
    labelled = work / 'labelled'
    code, stdout, stderr = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', pics, '--th', 0.0,
                                             '--top-k', 3, '--save-path', labelled], capfd)
    assert code == 0, stderr
    lines = [line for line in stdout.splitlines() if line.startswith(pics)]
    assert len(lines) == len(os.listdir(pics)) and lines[0].count('(') == 3
    assert sorted(os.listdir(labelled)) == sorted(os.listdir(pics))


def test_infer_skips_unreadable_images_and_refuses_bad_save_paths(trained, coco, work, capfd):
    out, _ = trained
    pics = os.path.join(coco, 'val2014')
    # A folder with an unreadable file: the readable images are labelled, the bad one is skipped with a note.
    mixed = work / 'mixed_pics'
    mixed.mkdir()
    first = sorted(os.listdir(pics))[0]
    shutil.copy(os.path.join(pics, first), mixed / first)
    (mixed / 'broken.jpg').write_text('not an image')
    code, stdout, stderr = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', mixed], capfd)
    assert code == 0, stderr
    assert f'{mixed / first}: ' in stdout and 'skipped: ' in stdout and 'broken.jpg' in stdout
    # A folder and a file-like --save-path: refused, instead of creating a folder named out.jpg.
    code, _, stderr = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', mixed,
                                        '--save-path', work / 'out.jpg'], capfd)
    assert code == 1 and '--save-path' in stderr and 'labelled/' in stderr and not (work / 'out.jpg').exists()
    # --save-path the input folder: refused, the originals kept.
    original = (mixed / first).read_bytes()
    code, _, err = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', mixed, '--save-path', mixed],
                             capfd)
    assert_user_error(code, err, 'would overwrite the input image')
    assert (mixed / first).read_bytes() == original


def test_infer_one_image_names_its_classes(trained, coco, work, capfd):
    """One image, named classes; no class of a 16-class checkpoint is named by a number (best.pth and latest.pth)."""
    out, _ = trained
    pics = os.path.join(coco, 'val2014')
    one = os.path.join(pics, sorted(os.listdir(pics))[0])
    code, stdout, _ = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', one, '--th', 0.0,
                                        '--top-k', 1, '--save-path', work / 'one.png'], capfd)
    assert code == 0 and (work / 'one.png').is_file()
    assert any(colour in stdout for colour in ('red', 'green', 'blue', 'yellow'))
    code, stdout, _ = call_main(infer, ['--model-path', out / 'latest.pth', '--pic-path', one, '--th', 0.0,
                                        '--top-k', 1], capfd)
    assert code == 0 and any(colour in stdout for colour in ('red', 'green', 'blue', 'yellow')), stdout


def test_infer_notes_a_size_that_differs_from_the_checkpoint(trained, coco, capfd):
    """A flag given explicitly wins over the checkpoint's recorded setting, with a one-line note."""
    out, _ = trained
    one = os.path.join(coco, 'val2014', sorted(os.listdir(os.path.join(coco, 'val2014')))[0])
    code, stdout, stderr = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', one,
                                             '--image-size', 96], capfd)
    assert code == 0, stderr
    assert 'records --image-size 64; using --image-size 96 as given' in stdout


def test_resume_continues_exactly(trained, coco, work, capfd):
    out, _ = trained
    resumed = work / 'resumed'
    args = ['--data', coco, '--epochs', 2, '--output-dir', resumed] + SMALL
    code, stdout, stderr = call_main(train, args + ['--stop-after', 1], capfd)
    assert code == 0, stderr
    assert torch.load(resumed / 'latest.pth', weights_only=True)['epoch'] == 1
    # Resumed with data-loading processes (the straight run had none): the augmentation draws are the same.
    code, stdout, stderr = call_main(train, ['--resume', '--output-dir', resumed, '--workers', 2], capfd)
    assert code == 0, stderr
    assert 'resuming' in stdout and 'epoch 2/2' in stdout and 'epoch 1/2' not in stdout
    a = torch.load(out / 'latest.pth', weights_only=True)
    b = torch.load(resumed / 'latest.pth', weights_only=True)
    for part in ('model', 'ema'):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a['history'][1]['mAP'] == b['history'][1]['mAP']
    # Resuming a finished run says so and succeeds (here through `--resume RUN_FOLDER`).
    code, stdout, stderr = call_main(train, ['--resume', resumed], capfd)
    assert code == 0 and 'already finished' in stdout, stdout + stderr


def test_torchrun_two_processes(trained, coco, work, capfd):
    out = work / 'ddp'
    prefix = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29517']
    env = {'OMP_NUM_THREADS': '1'}
    code, stdout, stderr = run_script('train.py', ['--data', coco, '--epochs', 1, '--output-dir', out, '--model-name',
                                      'tresnet_m', '--image-size', 64, '--batch-size', 4, '--workers', 0], work, extra_env=env, prefix=prefix)
    assert code == 0, stderr
    assert stdout.count('epoch 1/1 loss') == 1  # printed by rank 0 only
    assert (out / 'best.pth').is_file()
    # Validation under torchrun scores each image exactly once: same count and mAP as one process.
    code, stdout2, stderr = run_script('validate.py', ['--model-path', out / 'best.pth', '--data', coco,
                                                       '--workers', 0], work, extra_env=env, prefix=prefix)
    assert code == 0, stderr
    code, stdout1, _ = call_main(validate, ['--model-path', out / 'best.pth', '--data', coco, '--workers', 0], capfd)
    assert code == 0
    first = [line for line in stdout1.splitlines() if 'images in' in line][0].split()[0]
    assert [line for line in stdout2.splitlines() if 'images in' in line][0].split()[0] == first
    m1 = [line for line in stdout1.splitlines() if line.startswith('mAP ')]
    m2 = [line for line in stdout2.splitlines() if line.startswith('mAP ')]
    assert len(m2) == 1 and float(m1[0].split()[1]) == pytest.approx(float(m2[0].split()[1]), abs=0.01)


def test_train_zsl_nus_one_epoch(nus, work, capfd, monkeypatch):
    from small_models import shallow_tresnet_m
    shallow_tresnet_m(monkeypatch)  # (fewer blocks: what is checked is the zero-shot head, metrics and report)
    out = work / 'zsl'
    code, stdout, stderr = call_main(train_zsl_nus, ['--data', nus, '--epochs', 1, '--output-dir', out, '--lowmem']
                                     + SMALL, capfd)  # --lowmem: the memory-saving backward trains end to end
    assert code == 0, stderr
    line = [line for line in stdout.splitlines() if line.startswith('epoch 1/1')][0]
    assert 'ZSL mAP' in line and 'GZSL mAP' in line and 'F1@3' in line and 'F1@5' in line
    code, stdout, stderr = call_main(validate, ['--model-path', out / 'best.pth', '--data', nus, '--workers', 0,
                                                '--json', work / 'zsl.json'], capfd)
    assert code == 0, stderr
    assert 'ZSL mAP' in stdout and 'GZSL mAP' in stdout
    report = json.loads((work / 'zsl.json').read_text())
    assert {'zsl', 'gzsl', 'image_views'} <= set(report) and 'threshold' not in report  # top-K: no threshold
    # infer.py labels images with it: the classes best.pth records (seen and unseen), scored as with the data's
    # own word vector and class name files given by hand
    saved = torch.load(out / 'best.pth', weights_only=True)
    assert saved['wordvecs'].shape[0] == 300 and len(saved['wordvec_classes']) == saved['wordvecs'].shape[1]
    pics = sorted((Path(nus) / 'images').rglob('*.jpg'))[:3]
    scores = {}
    for name, extra in (('recorded', []), ('files', ['--wordvecs', Path(nus) / 'wordvec_array.pth', '--class-names',
                                                      Path(nus) / 'benchmark_81_v0.json'])):
        code, stdout, stderr = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', pics[0].parent,
                                                 '--workers', 0, '--thr', 0, '--top-k', 1000,
                                                 '--output', work / f'zsl_{name}.json'] + extra, capfd)
        assert code == 0, stderr
        rows = json.loads((work / f'zsl_{name}.json').read_text())
        scores[name] = {row['image']: dict(zip(row['labels'], row['scores'])) for row in rows}
    assert scores['recorded'].keys() == scores['files'].keys()
    for image, recorded in scores['recorded'].items():
        assert set(recorded) == set(saved['wordvec_classes']) == set(scores['files'][image])
        assert all(abs(recorded[c] - scores['files'][image][c]) < 1e-6 for c in recorded)
    # Word vectors of the wrong shape: one line naming the file and the shapes accepted.
    broken = work / 'nus_bad_wordvecs'
    shutil.copytree(nus, broken)
    torch.save(torch.randn(7, 5), broken / 'wordvec_array.pth')
    code, _, err = call_main(train_zsl_nus, ['--data', broken, '--epochs', 1, '--output-dir', work / 'zsl_bad']
                             + SMALL, capfd)
    assert_user_error(code, err, 'wordvec_array.pth', '300')
    # A class count other than the benchmark's seen classes (it would only mislabel best.pth's metadata).
    code, _, err = call_main(train_zsl_nus, ['--data', nus, '--epochs', 1, '--output-dir', work / 'zsl_bad',
                                             '--num-classes', 5] + SMALL, capfd)
    assert_user_error(code, err, '--num-classes 5 does not match the')
    # A new run in the folder of a finished one, without --resume: refused, the finished run kept.
    best = (out / 'best.pth').read_bytes()
    code, _, err = call_main(train_zsl_nus, ['--data', nus, '--epochs', 1, '--output-dir', out] + SMALL, capfd)
    assert_user_error(code, err, 'already holds a run', '--resume')
    assert (out / 'best.pth').read_bytes() == best


@pytest.fixture(scope='module')
def broken_coco(coco, work):
    """Copies of the demo COCO folder, each broken in one way."""
    def make(name, damage):
        root = work / name
        if not root.exists():
            shutil.copytree(coco, root)
            damage(root)
        return str(root)
    return make


def test_bad_data_is_one_line(broken_coco, work, capfd):
    common = ['--epochs', 1, '--output-dir', work / 'bad_out'] + SMALL
    code, out, err = call_main(train, ['--data', work / 'no_such_folder', '--compile-mode', 'reduce-overhead']
                               + common, capfd)
    assert_user_error(code, err, 'no_such_folder')
    assert '--compile-mode reduce-overhead acts only with --compile' in out
    code, _, err = call_main(validate, ['--data', work / 'no_such_folder', '--thr', 1.5], capfd)
    assert_user_error(code, err, '--thr is a probability threshold')

    root = broken_coco('no_ann', lambda r: os.remove(r / 'annotations' / 'instances_val2014.json'))
    code, _, err = call_main(train, ['--data', root] + common, capfd)
    assert_user_error(code, err, 'instances_val2014.json')

    def remove_image(r):
        os.remove(r / 'train2014' / sorted(os.listdir(r / 'train2014'))[0])
    root = broken_coco('missing_image', remove_image)
    code, _, err = call_main(train, ['--data', root] + common, capfd)
    assert_user_error(code, err, 'train2014', 'not found')
    assert not (work / 'bad_out').exists()  # a run that never started leaves no empty output folder


def test_corrupt_jpeg_is_one_line(broken_coco, trained, capfd):
    def corrupt(r):
        for split in ('train2014', 'val2014'):
            name = sorted(os.listdir(r / split))[1]
            (r / split / name).write_bytes(b'\xff\xd8\xff\xe0 this is not a JPEG')
    root = broken_coco('corrupt', corrupt)
    out, _ = trained
    # In a DataLoader worker process (the error crosses the process boundary) ...
    code, _, err = call_main(validate, ['--model-path', out / 'best.pth', '--data', root, '--workers', 1], capfd)
    line = assert_user_error(code, err, 'val2014')
    assert 'cannot read image' in line
    # ... and in the training loop of the main process.
    code, _, err = call_main(train, ['--data', root, '--epochs', 1, '--output-dir', out.parent / 'corrupt_out']
                             + SMALL, capfd)
    assert_user_error(code, err, 'train2014', 'cannot read image')


def test_bad_checkpoints_are_one_line(trained, coco, work, capfd):
    out, _ = trained
    best = out / 'best.pth'
    code, _, err = call_main(validate, ['--model-path', work / 'missing.pth', '--data', coco], capfd)
    assert_user_error(code, err, 'missing.pth')
    code, _, err = call_main(train, ['--data', coco, '--model-path', work / 'missing21k.pth', '--output-dir',
                                     work / 'x'] + SMALL, capfd)
    assert_user_error(code, err, 'missing21k.pth')

    code, _, err = call_main(validate, ['--model-path', best, '--data', coco, '--model-name', 'tresnet_l'], capfd)
    assert_user_error(code, err, 'tresnet_l')
    pics = os.path.join(coco, 'val2014')
    code, _, err = call_main(infer, ['--model-path', best, '--pic-path', pics, '--model-name', 'tresnet_xl'], capfd)
    assert_user_error(code, err, 'tresnet_xl')

    code, _, err = call_main(validate, ['--model-path', best, '--data', coco, '--num-classes', 80], capfd)
    assert_user_error(code, err, '16', '80')

    text = work / 'notes.pth'
    text.write_text('this is not a checkpoint')
    code, _, err = call_main(infer, ['--model-path', text, '--pic-path', pics], capfd)
    assert_user_error(code, err, 'notes.pth')

    code, _, err = call_main(infer, ['--model-path', best, '--pic-path', work / 'nothing.jpg'], capfd)
    assert_user_error(code, err, 'nothing.jpg')

    for flags, message in ((['--num-classes', 0], '--num-classes must be 1 or more'),
                           (['--image-size', 0], '--image-size must be positive')):
        code, _, err = call_main(infer, ['--model-path', best, '--pic-path', pics] + flags, capfd)
        assert_user_error(code, err, message)

    # Broken weights give NaN scores, which would rank first in mAP and give a plausible number: refused.
    state = torch.load(best, weights_only=True)
    state['model']['head.decoder.duplicate_pooling_bias'].fill_(float('nan'))
    del state['checksum']  # (weights saved that way by other code: no checksum, so only the scores can tell)
    torch.save(state, work / 'nan.pth')
    code, _, err = call_main(validate, ['--model-path', work / 'nan.pth', '--data', coco, '--workers', 0], capfd)
    assert_user_error(code, err, 'non-finite scores')
    code, _, err = call_main(infer, ['--model-path', work / 'nan.pth', '--pic-path', pics], capfd)
    assert_user_error(code, err, 'non-finite scores')
    # An unwritable --json path is found before the run, not after it.
    blocker = work / 'json_blocker'
    blocker.write_text('x')
    code, out_text, err = call_main(validate, ['--model-path', best, '--data', coco, '--json', blocker / 'm.json'],
                                    capfd)
    assert_user_error(code, err, 'json_blocker', '--json')
    assert 'mAP' not in out_text


def test_unwritable_output_and_bad_resume(coco, work, capfd):
    blocker = work / 'a_file'
    blocker.write_text('x')
    code, _, err = call_main(train, ['--data', coco, '--output-dir', blocker / 'out'] + SMALL, capfd)
    assert_user_error(code, err, str(blocker / 'out'))
    code, _, err = call_main(train, ['--data', coco, '--resume', '--output-dir', work / 'never_trained'] + SMALL,
                             capfd)
    assert_user_error(code, err, 'nothing to resume')


def test_resume_rejects_changed_settings(trained, capfd):
    out, _ = trained
    code, _, err = call_main(train, ['--resume', '--output-dir', out, '--lr', 0.5], capfd)
    assert_user_error(code, err, '--lr')


def test_non_finite_loss_stops_with_one_line(coco, work, capfd):
    out = work / 'diverged'
    code, _, err = call_main(train, ['--data', coco, '--epochs', 1, '--output-dir', out] + SMALL[:-2] +
                             ['--lr', '1e30'], capfd)
    line = assert_user_error(code, err, 'non-finite', 'epoch 1/1', 'step')
    assert '--lr' in line
    assert not (out / 'latest.pth').exists() and not (out / 'best.pth').exists()


@pytest.mark.parametrize('module', [train, train_zsl_nus, validate, infer, app, export])
def test_help_lists_every_flag_with_its_default(module, capfd):
    parser = module.build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(['--help'])
    assert exit_info.value.code == 0
    text = ' '.join(capfd.readouterr().out.split())
    for action in parser._actions:
        if action.dest == 'help':
            continue
        for option in action.option_strings:
            assert option in text, option
        # Every flag's help ends with its default.
        formatter = parser._get_formatter()
        assert '%(default)' in formatter._get_help_string(action) or '(default:' in action.help, action.dest


def test_help_subprocess(work):
    code, stdout, stderr = run_script('train.py', ['--help'], work, timeout=120)
    assert code == 0 and '--channels-last, --no-channels-last' in stdout and '(default: 0.0001)' in stdout


def test_compiled_training_reports_its_graphs_and_warns_on_a_break(coco, work, capfd, monkeypatch):
    """train.py --compile: the first step reports how many graphs torch.compile built (1 for the whole model),
    and a graph break (planted here) gives a warning, since it costs most of the compiled speed. The aot_eager
    backend (no code generation) keeps this fast; the trainer's code path is the same. With --compile-mode
    reduce-overhead (CUDA graphs), the mode reaches torch.compile and every step is marked as a new one, so the
    graphs may reuse the last step's memory. tresnet_m has fewer blocks here (every kind of block, fewer copies):
    dynamo and AOT autograd trace the whole model op by op, three times."""
    import torch._dynamo
    from small_models import shallow_tresnet_m
    from src_files.training import speed
    from src_files.models import compile as compile_module
    from src_files.models.tresnet.layers.norm_act import NormAct2d
    modes, step_marks = [], []

    def compile_without_codegen(model, scope, mode):
        modes.append(mode)
        return compile_module.compile_model(model, scope, backend='aot_eager')  # (aot_eager takes no mode)

    monkeypatch.setattr(speed, 'compile_model', compile_without_codegen)
    shallow_tresnet_m(monkeypatch)
    monkeypatch.setattr(torch.compiler, 'cudagraph_mark_step_begin', lambda: step_marks.append(1))
    args = ['--data', coco, '--epochs', 1, '--compile'] + SMALL
    torch._dynamo.reset()
    # 24 images in batches of 10: the last batch (4) compiles again, and that step's time stays out of images/s
    code, stdout, stderr = call_main(train, args + ['--output-dir', work / 'compiled', '--compile-mode',
                                                    'reduce-overhead', '--batch-size', 10], capfd)
    assert code == 0, stderr
    assert 'compilation; left out of images/s), 1 graph(s)' in stdout and 'warning: ' not in stdout
    assert 'on 24 images' in stdout and 'torch.compile: compiled again for a batch of 4 (' in stdout
    steps = int(re.search(r'1 epoch x (\d+) steps', stdout).group(1))
    assert modes == ['reduce-overhead'] and len(step_marks) == steps == 3
    forward = NormAct2d.forward
    monkeypatch.setattr(NormAct2d, 'forward', lambda self, x: (torch._dynamo.graph_break(), forward(self, x))[1])
    torch._dynamo.reset()
    code, stdout, stderr = call_main(train, args + ['--output-dir', work / 'compiled_break'], capfd)
    torch._dynamo.reset()
    assert code == 0, stderr
    assert 'warning: torch.compile split the model into' in stdout
    assert modes == ['reduce-overhead', 'default'] and len(step_marks) == 3  # no CUDA graphs: no marks


class _WritesAMarker:
    """Unpickling it would create the file `marker` (a stand-in for whatever code a downloaded file carries)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


class _Note:
    """A harmless custom class in a trusted checkpoint: only --unsafe-load rebuilds it."""

    def __init__(self, text):
        self.text = text


def test_a_checkpoint_that_would_run_code_is_refused_by_every_script(coco, work, capfd):
    marker = work / 'MARKER'
    evil = work / 'evil.pth'
    torch.save({'model': {'body.conv1.0.weight': torch.ones(2, 3, 1, 1)}, 'x': _WritesAMarker(marker)}, evil)
    image = os.path.join(coco, 'val2014', sorted(os.listdir(os.path.join(coco, 'val2014')))[0])
    runs = [(validate, ['--model-path', evil, '--data', coco, '--workers', 0]),
            (infer, ['--model-path', evil, '--pic-path', image, '--workers', 0]),
            (train, ['--data', coco, '--model-path', evil, '--epochs', 1, '--output-dir', work / 'evil_out'] + SMALL)]
    for module, args in runs:
        code, _, err = call_main(module, args, capfd)
        line = assert_user_error(code, err, 'evil.pth was not loaded', 'it pickles exec',
                                 'only if you trust the file, pass --unsafe-load')
        assert line.endswith('--unsafe-load'), line
        assert not marker.exists(), module.__name__
    # As a user runs it (its own process, the exit code the shell sees).
    code, _, err = run_script('validate.py', ['--model-path', evil, '--data', coco, '--workers', 0], work)
    assert_user_error(code, err, 'pass --unsafe-load')
    assert not marker.exists()


def test_old_and_trusted_checkpoints_in_the_scripts(trained, coco, work, capfd):
    """A best.pth that also holds an argparse Namespace and numpy numbers loads as it is; one that holds another
    class loads only with --unsafe-load."""
    import argparse

    import numpy as np
    out, _ = trained
    best = torch.load(out / 'best.pth', weights_only=True)
    torch.save(dict(best, args=argparse.Namespace(lr=1e-3), epoch=np.int64(2), score=np.float32(0.5),
                    history=np.zeros(2)), work / 'old_style.pth')
    pics = os.path.join(coco, 'val2014')
    code, stdout, stderr = call_main(infer, ['--model-path', work / 'old_style.pth', '--pic-path', pics, '--workers',
                                             0, '--top-k', 1, '--th', 0], capfd)
    assert code == 0 and stdout.count(pics) == len(os.listdir(pics)), stdout + stderr

    torch.save(dict(best, note=_Note('trusted')), work / 'trusted.pth')
    code, _, err = call_main(validate, ['--model-path', work / 'trusted.pth', '--data', coco, '--workers', 0], capfd)
    assert_user_error(code, err, '_Note', '--unsafe-load')
    code, stdout, stderr = call_main(validate, ['--model-path', work / 'trusted.pth', '--data', coco, '--workers', 0,
                                                '--unsafe-load'], capfd)
    assert code == 0 and 'mAP ' in stdout, stdout + stderr
    code, _, err = call_main(train, ['--data', coco, '--model-path', work / 'trusted.pth', '--epochs', 1,
                                     '--output-dir', work / 'trusted_refused'] + SMALL, capfd)
    assert_user_error(code, err, '_Note', '--unsafe-load')


def test_model_path_is_required_unless_demo(coco, work, capfd):
    for module, args in ((validate, ['--data', coco]), (infer, ['--pic-path', os.path.join(coco, 'val2014')])):
        code, _, err = call_main(module, args, capfd)
        assert_user_error(code, err, 'no checkpoint given: pass --model-path FILE, or --demo')
        assert 'models_local' not in err
    code, _, err = call_main(infer, ['--model-path', work / 'any.pth'], capfd)
    assert_user_error(code, err, 'no image given: pass --pic-path', '--demo')


def test_infer_demo_workers_and_thresholds(trained, coco, work, capfd, monkeypatch):
    """infer.py --demo labels the first images of the demo dataset with outputs/demo/best.pth; --workers loads
    them in other processes, in the same order; --th and --thr are one flag in both scripts."""
    import src_files.data
    out, _ = trained
    (work / 'demo_cwd' / 'outputs' / 'demo').mkdir(parents=True, exist_ok=True)
    shutil.copy(out / 'best.pth', work / 'demo_cwd' / 'outputs' / 'demo' / 'best.pth')
    monkeypatch.chdir(work / 'demo_cwd')
    monkeypatch.setattr(src_files.data, 'demo_coco_root', lambda: coco)  # (the small copy the tests share)
    pics = sorted(os.listdir(os.path.join(coco, 'val2014')))[:infer.DEMO_IMAGES]
    outputs = []
    for flags in (['--workers', 0, '--th', 0.2], ['--workers', 2, '--batch-size', 3, '--thr', 0.2],
                  ['-j', 2, '--batch_size=3', '--thr=0.2']):
        code, stdout, stderr = call_main(infer, ['--demo'] + flags, capfd)
        assert code == 0, stderr
        lines = [line for line in stdout.splitlines() if line.startswith(coco)]
        assert [os.path.basename(line.split(': ')[0]) for line in lines] == pics
        outputs.append(lines)
    assert outputs[0] == outputs[1] == outputs[2]
    results = []
    for flag in ('--thr', '--th'):
        code, stdout, stderr = call_main(validate, ['--demo', '--data', coco, '--workers', 0, flag, 0.3], capfd)
        assert code == 0 and '(threshold 0.3)' in stdout, stdout + stderr
        results.append([line for line in stdout.splitlines() if line.startswith('CP ')])
    assert results[0] == results[1]


# (SIGTERM then SIGINT 0.05 s apart may both be pending when Python next runs its handlers, which take them in
# signal-number order: either may be the one that stops the run; SIGTERM alone exits 143, tests/test_faults.py)
@pytest.mark.parametrize('signals, code', [(['SIGINT', 'SIGINT', 'SIGINT'], {130}),
                                           (['SIGTERM', 'SIGINT'], {130, 143})])
def test_repeated_interrupts_stop_with_one_line(coco, work, signals, code):
    """Ctrl-C pressed again and again (or SIGTERM, then Ctrl-C), with loader processes running: one error line
    naming the saved epoch and how to continue, no traceback, and the saved checkpoint intact."""
    import signal
    import time
    out = work / f'interrupted_{signals[0]}'
    cmd = [sys.executable, os.path.join(ROOT, 'train.py'), '--data', str(coco), '--epochs', '50',
           '--output-dir', str(out)] + [str(a) for a in SMALL] + ['--workers', '2']
    proc = subprocess.Popen(cmd, cwd=str(work), env=_env(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 240
    while not (out / 'latest.pth').exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # (into the next epoch: its loader processes are at work)
    for name in signals:
        proc.send_signal(getattr(signal, name))
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode in code, stderr
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'is saved in' in errors[0] and '--resume' in errors[0], stderr
    assert 'Traceback' not in stderr + stdout and 'Exception ignored' not in stderr, stderr
    from src_files.training.checkpoint import load_latest
    assert load_latest(str(out / 'latest.pth'))['epoch'] >= 1
    assert not list(out.glob('*.tmp'))
