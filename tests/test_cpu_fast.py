"""The fast CPU path (src_files/export/cpu_int8.py): int8 through ONNX Runtime, its accuracy guard, its cache,
that it runs only when asked for (--precision int8), and validate.py / infer.py with it on a tresnet_m checkpoint at 64 px. The
checkpoint's tresnet_m has fewer blocks (every kind of TResNet-M's blocks, fewer copies: small_models.EVERY_KIND),
which shortens each conversion (export, calibration, quantization) and each evaluation."""
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import infer
import validate
from src_files.data import coco_datasets
from src_files.data.demo import CLASS_NAMES, demo_coco_root
from src_files.export import cpu_int8 as cpu_fast
from src_files.inference.load import PRECISION_NOTES
from src_files.settings import InferenceSettings, SpeedSettings
from src_files.training.checkpoint import save_best
from src_files.errors import UserError
from src_files.helper_functions.augmentations import train_transform, val_transform
from src_files.loss_functions.losses import AsymmetricLoss
from src_files.models import create_model
from src_files.models.config import ModelConfig
from small_models import shallow_tresnet_m
from tests.script_calls import assert_user_error, call_main

SIZE = 64


@pytest.fixture(scope='module', autouse=True)
def shallow():
    """tresnet_m with fewer blocks for the whole module (the checkpoint and every script call that rebuilds it)."""
    with pytest.MonkeyPatch.context() as patch:
        shallow_tresnet_m(patch)
        yield


def _briefly_trained(model, data):
    """24 Adam steps on the demo's training images: an untrained model scores every image within about 0.0003 of
    the others, less than int8's rounding, so only a model whose scores differ from image to image (by about 0.06
    after these steps) makes the comparison of int8's mAP with fp32's mean anything."""
    train_set, _ = coco_datasets(data, train_transform(SIZE, augment=False), val_transform(SIZE))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    criterion = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True)
    model.train()
    for _ in range(3):
        for images, targets in torch.utils.data.DataLoader(train_set, batch_size=16, shuffle=True):
            loss = criterion(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    """A briefly trained tresnet_m checkpoint with the demo's 16 classes, and a small demo validation set."""
    root = tmp_path_factory.mktemp('cpu_fast')
    cfg = ModelConfig(model_name='tresnet_m', decoder_embedding=64, image_size=SIZE, num_classes=len(CLASS_NAMES))
    data = demo_coco_root(cache_dir=str(root / 'demo'), num_train=4, num_val=40)  # (4 calibration images)
    torch.manual_seed(0)
    model = _briefly_trained(create_model(**cfg.to_dict()),
                             demo_coco_root(cache_dir=str(root / 'demo_train'), num_train=128, num_val=8))
    save_best(str(root / 'model.pth'), model.state_dict(), CLASS_NAMES, cfg.to_dict())
    return types.SimpleNamespace(root=root, checkpoint=root / 'model.pth', data=data)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    """One int8 cache for the module: the guard test reads the record the first conversion wrote."""
    root = tmp_path_factory.mktemp('cache')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('ML_DECODER_CACHE', str(root))
        yield root / 'int8'


def settings(precision='fp32', compile=False, model_path='m.pth', calibration_data=''):
    return InferenceSettings(model=ModelConfig(), precision=precision, model_path=model_path,
                             calibration_data=calibration_data, speed=SpeedSettings(compile=compile))


def test_int8_is_taken_only_when_asked_for_and_never_where_it_cannot_apply(monkeypatch):
    cpu, cuda = torch.device('cpu'), torch.device('cuda')
    monkeypatch.setattr(cpu_fast, 'cpu_has_vnni', lambda: True)
    for precision in ('fp32', 'bf16', 'fp16'):  # (fp32 is the default: the exact model, whatever the machine)
        assert not cpu_fast.wants_int8(settings(precision), cpu) and not cpu_fast.wants_int8(settings(precision), cuda)
    assert cpu_fast.wants_int8(settings('int8'), cpu)
    for blocker in (dict(zsl=1), dict(compile=True), dict(save_attention=True)):
        on = dict(zsl=blocker.get('zsl', 0), save_attention=blocker.get('save_attention', False))
        with pytest.raises(UserError, match='does not go with'):
            cpu_fast.wants_int8(settings('int8', compile=blocker.get('compile', False)), cpu, **on)
    with pytest.raises(UserError, match='does not go with an exported'):
        cpu_fast.wants_int8(settings('int8', model_path='model.onnx'), cpu)
    with pytest.raises(UserError, match='is a CPU path'):
        cpu_fast.wants_int8(settings('int8'), cuda)
    monkeypatch.setattr(cpu_fast, 'cpu_has_vnni', lambda: False)  # (slower there, still what was asked for)
    assert cpu_fast.wants_int8(settings('int8'), cpu)


def test_changed_labels_counts_images_whose_label_set_differs():
    reference = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.1], [0.5, 0.5, 0.5]])
    quantized = np.array([[0.9, 0.1, 0.7], [0.2, 0.76, 0.1], [0.4, 0.6, 0.5]])
    assert cpu_fast.changed_labels(reference, quantized, 0.75, 'multi-label') == 2  # (rows 0 and 1 cross 0.75)
    assert cpu_fast.changed_labels(reference, quantized, [0.85, 0.95, 0.75], 'multi-label') == 1  # (row 0)
    assert cpu_fast.changed_labels(reference, quantized, 0.75, 'single-label') == 1  # (row 2's top class)
    assert cpu_fast.changed_labels(reference, reference, 0.5, 'multi-label') == 0


def test_spread_picks_evenly_and_includes_both_ends():
    assert cpu_fast.spread(0) == [] and cpu_fast.spread(3) == [0, 1, 2]
    picked = cpu_fast.spread(1000, 5)
    assert picked == [0, 250, 500, 749, 999] or picked == [0, 250, 500, 750, 999]


def test_calibration_images_are_spread_and_skip_what_cannot_be_read():
    def load(i):
        if i == 3:
            raise UserError('unreadable')
        return torch.full((3, 2, 2), float(i))
    batch, ids = cpu_fast.calibration_images(5, load, lambda i: f'image {i}')
    assert ids == ['image 0', 'image 1', 'image 2', 'image 4'] and batch[:, 0, 0, 0].tolist() == [0, 1, 2, 4]
    batch, ids = cpu_fast.calibration_images(100, lambda i: torch.zeros(3, 2, 2), str)
    assert ids == [str(i) for i in cpu_fast.spread(100)] and len(batch) == cpu_fast.CALIBRATION_IMAGES
    batch, ids = cpu_fast.calibration_images(0, load, str)
    assert ids == [] and len(batch) == 0


def test_the_cache_key_covers_the_checkpoint_the_model_settings_and_the_calibration(tmp_path):
    import hashlib
    import onnxruntime
    path = tmp_path / 'm.pth'
    path.write_bytes(b'weights')
    cfg = ModelConfig(model_name='tresnet_m', image_size=64, num_classes=3, num_of_groups=2, decoder_embedding=64)
    digest = hashlib.sha256(b'weights')
    digest.update(json.dumps(['2', {'model_name': 'tresnet_m', 'image_size': 64, 'num_classes': 3, 'num_of_groups': 2,
                                    'decoder_embedding': 64, 'use_ml_decoder': 1, 'fold_norms': True}, 'multi-label',
                              ['a', 'b'], onnxruntime.__version__, torch.__version__]).encode())
    key = cpu_fast.cache_key(str(path), cfg, True, ['a', 'b'], 'multi-label')
    assert key == digest.hexdigest()[:24]
    assert key != cpu_fast.cache_key(str(path), cfg, False, ['a', 'b'], 'multi-label')
    assert key != cpu_fast.cache_key(str(path), cfg, True, ['a', 'c'], 'multi-label')
    assert key != cpu_fast.cache_key(str(path), cfg, True, ['a', 'b'], 'single-label')


def scores_of(stdout):
    return float(re.search(r'^mAP ([\d.]+)', stdout, re.M).group(1))


@pytest.mark.slow
def test_validate_int8_matches_fp32_and_is_cached(work, cache, tmp_path, capfd):
    base = ['--model-path', work.checkpoint, '--data', work.data, '--workers', 0]
    code, fp32, err = call_main(validate, base + ['--precision', 'fp32', '--save-scores', tmp_path / 'fp32.csv'],
                                capfd)
    assert code == 0, err
    assert fp32.strip().splitlines()[-1].endswith('float32')
    code, int8, err = call_main(validate, base + ['--precision', 'int8', '--save-scores', tmp_path / 'int8.csv'],
                                capfd)
    assert code == 0, err
    assert 'quantizing the model to int8' in err + int8 and (err + int8).count('running int8') == 1
    assert re.search(r'other labels for \d+ of the 32 calibration images', int8)
    assert int8.splitlines()[0].startswith('precision: int8 on cpu') and fp32.splitlines()[0] == \
        'precision: fp32 on cpu, ' + PRECISION_NOTES['fp32']
    assert int8.strip().splitlines()[-1].endswith('int8 (ONNX Runtime)')
    import pandas as pd
    p32 = pd.read_csv(tmp_path / 'fp32.csv').set_index('image').to_numpy()
    p8 = pd.read_csv(tmp_path / 'int8.csv').set_index('image').to_numpy()
    diff = np.abs(p8 - p32)  # on images it was not calibrated on as well (8 of the 40 are calibration images)
    assert diff.mean() < cpu_fast.GUARD_MEAN and diff.max() < cpu_fast.GUARD_MAX, (diff.mean(), diff.max())
    assert abs(scores_of(int8) - scores_of(fp32)) < 2.0
    entries = sorted(p.suffix for p in cache.iterdir())
    assert entries == ['.json', '.onnx'], entries  # (the first conversion of the module)
    record = json.loads(next(cache.glob('*.json')).read_text())
    recorded = np.abs(np.asarray(record['int8']) - np.asarray(record['fp32']))  # (the calibration images' probabilities)
    assert recorded.shape == (32, len(CLASS_NAMES)) and recorded.mean() <= cpu_fast.GUARD_MEAN
    code, again, err = call_main(validate, base + ['--precision', 'int8'], capfd)  # the cached file: no conversion
    assert code == 0 and 'quantizing' not in err + again and scores_of(again) == scores_of(int8)


@pytest.mark.slow
def test_the_accuracy_guard_falls_back_to_fp32(work, cache, monkeypatch, capfd):
    monkeypatch.setattr(cpu_fast, 'GUARD_MAX', 1e-9)  # no int8 model is that close: the guard must refuse it
    # (the cached file of the test above is loaded and refused by its recorded differences)
    base = ['--model-path', work.checkpoint, '--data', work.data, '--workers', 0]
    code, out, err = call_main(validate, base + ['--precision', 'int8'], capfd)
    assert code == 0, err
    assert 'running fp32' in err + out and out.strip().splitlines()[-1].endswith('float32')
    code, fp32, err = call_main(validate, base + ['--precision', 'fp32'], capfd)
    assert scores_of(out) == scores_of(fp32)  # the exact path's result


@pytest.mark.slow
def test_infer_int8_with_calibration_data(work, cache, tmp_path, capfd):
    pics = f'{work.data}/val2014'
    outputs = {}
    for precision in ('fp32', 'int8'):
        extra = ['--calibration-data', f'{work.data}/train2014'] if precision == 'int8' else []
        code, out, err = call_main(infer, ['--model-path', work.checkpoint, '--pic-path', pics, '--workers', 0,
                                           '--precision', precision, '--thr', 0, '--top-k', 16,
                                           '--output', tmp_path / f'{precision}.json'] + extra, capfd)
        assert code == 0, err
        outputs[precision] = json.loads((tmp_path / f'{precision}.json').read_text())
    assert len(outputs['int8']) == len(outputs['fp32']) == 40
    for a, b in zip(outputs['fp32'], outputs['int8']):  # every class listed (--thr 0, --top-k 16) by both
        assert a['image'] == b['image'] and sorted(a['labels']) == sorted(b['labels']) == sorted(CLASS_NAMES)
        p32, p8 = dict(zip(a['labels'], a['scores'])), dict(zip(b['labels'], b['scores']))
        assert max(abs(p32[c] - p8[c]) for c in CLASS_NAMES) < cpu_fast.GUARD_MAX
    assert cpu_fast.load_calibration(f'{work.data}/train2014', SIZE, None)[0].shape == (4, 3, SIZE, SIZE)


def test_bad_calibration_data_is_one_line(work, cache, tmp_path, capfd):
    base = ['--model-path', work.checkpoint, '--data', work.data, '--workers', 0, '--precision', 'int8']
    code, _, err = call_main(validate, base + ['--calibration-data', tmp_path / 'missing'], capfd)
    assert_user_error(code, err, '--calibration-data folder not found')
    (tmp_path / 'empty').mkdir()
    code, _, err = call_main(validate, base + ['--calibration-data', tmp_path / 'empty'], capfd)
    assert_user_error(code, err, 'no image in --calibration-data')


@pytest.mark.slow
def test_export_int8_writes_a_checked_quantized_file(work, tmp_path, capfd):
    import export
    from src_files.export import load_onnx
    out = tmp_path / 'model_int8.onnx'
    code, stdout, err = call_main(export, ['--model-path', work.checkpoint, '--precision', 'int8', '--output', out,
                                           '--calibration-data', f'{work.data}/train2014',
                                           '--check-images', f'{work.data}/val2014'], capfd)
    assert code == 0, err
    line = re.search(r'int8: probabilities within ([\d.]+) on average, ([\d.]+) at most, of PyTorch.s on (\d+) images',
                     stdout)
    assert line and float(line.group(1)) <= cpu_fast.GUARD_MEAN and int(line.group(3)) == 4 + 16
    runner, meta = load_onnx(str(out))
    assert meta['precision'] == 'int8' and meta['calibration_images'] == '4' and meta['class_names'] == CLASS_NAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left
    code, _, err = call_main(export, ['--model-path', work.checkpoint, '--precision', 'int8'], capfd)
    assert_user_error(code, err, '--calibration-data')


def test_bench_infer_on_the_cpu_compares_the_paths(capsys, monkeypatch):
    """bench_infer.py --device cpu without --modes: the CPU paths' table (tiny sizes, eager paths only)."""
    import runpy
    from pathlib import Path
    bench = Path(__file__).resolve().parent.parent / 'benchmarks'
    monkeypatch.syspath_prepend(str(bench))
    monkeypatch.setattr(sys, 'argv', ['bench_infer.py', '--device', 'cpu', '--model-name', 'tresnet_m', '--image-size',
                                      '32', '--num-classes', '5', '--paths', 'published,fp32,fp32+cl',
                                      '--batch-sizes', '1,2', '--min-seconds', '0', '--iters', '1', '--warmup', '0'])
    runpy.run_path(str(bench / 'bench_infer.py'), run_name='__main__')
    out = capsys.readouterr().out
    rows = [line.split('|')[1].strip() for line in out.splitlines() if line.startswith('| ') and 'x |' in line]
    assert rows == ['published', 'fp32', 'fp32+cl'], out
    assert '| path | prepare s | batch 1 images/s | ratio | batch 2 images/s | ratio |' in out
    diffs = [float(line.split('|')[-2]) for line in out.splitlines() if line.startswith('| ') and 'x |' in line]
    assert max(diffs) < 1e-5  # the fp32 paths compute the published logits


@pytest.mark.slow
def test_default_flags_give_the_fp32_rows_whatever_the_number_of_images(work, cache, tmp_path, capfd, monkeypatch):
    """With default flags the labels and scores of an image are the fp32 model's, in a folder of 300 images as in one
    of 6 (above and below any size at which a faster path could start), on a CPU with int8 instructions too."""
    import shutil
    import pandas as pd
    monkeypatch.setattr(cpu_fast, 'cpu_has_vnni', lambda: True)
    sources = sorted((Path(work.data) / 'val2014').glob('*.jpg'))
    big, small = tmp_path / 'big', tmp_path / 'small'
    big.mkdir(), small.mkdir()
    for i in range(300):
        shutil.copy(sources[i % len(sources)], big / f'{i:03d}.jpg')
    for i in range(0, 300, 50):
        shutil.copy(big / f'{i:03d}.jpg', small)
    rows = {}
    for folder in (big, small):
        code, out, err = call_main(infer, ['--model-path', work.checkpoint, '--pic-path', folder, '--workers', 0,
                                           '--output', tmp_path / f'{folder.name}.csv'], capfd)
        assert code == 0, err
        assert out.splitlines()[0].startswith('precision: fp32 on cpu') and 'running int8' not in out + err
        table = pd.read_csv(tmp_path / f'{folder.name}.csv', dtype=str, keep_default_na=False)
        rows[folder.name] = table.set_index(table['image'].map(lambda p: Path(p).name)).drop(columns='image')
    shared = rows['small'].index
    assert len(rows['big']) == 300 and len(shared) == 6
    pd.testing.assert_frame_equal(rows['small'], rows['big'].loc[shared], check_exact=True)
    probs = fp32_probabilities(work.checkpoint, [small / name for name in shared])
    for name, p in zip(shared, probs):  # (labels above the default threshold 0.75, best first)
        expected = [CLASS_NAMES[c] for c in np.argsort(-p) if p[c] > 0.75]
        row = rows['small'].loc[name]
        assert (row['labels'].split(';') if row['labels'] else []) == expected, (name, row['labels'], expected)
        scores = [float(v) for v in row['scores'].split(';')] if row['scores'] else []
        assert np.allclose(scores, sorted(p[p > 0.75], reverse=True), atol=1e-5)


def fp32_probabilities(checkpoint, files):
    """The checkpoint's fp32 model's probabilities on image files, computed here without the scripts (norms not
    folded, one batch)."""
    from PIL import Image
    cfg = ModelConfig(model_name='tresnet_m', decoder_embedding=64, image_size=SIZE, num_classes=len(CLASS_NAMES))
    model = create_model(**cfg.to_dict()).eval()
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['model'])
    images = torch.stack([val_transform(SIZE)(Image.open(f).convert('RGB')) for f in files])
    with torch.no_grad():
        return torch.sigmoid(model(images)).numpy()


@pytest.mark.slow
def test_validate_default_flags_save_the_fp32_scores_for_a_large_set(work, cache, tmp_path, capfd, monkeypatch):
    import pandas as pd
    monkeypatch.setattr(cpu_fast, 'cpu_has_vnni', lambda: True)
    data = demo_coco_root(cache_dir=str(tmp_path / 'demo'), num_train=2, num_val=300)
    code, out, err = call_main(validate, ['--model-path', work.checkpoint, '--data', data, '--workers', 0,
                                          '--save-scores', tmp_path / 'scores.csv'], capfd)
    assert code == 0, err
    assert out.splitlines()[0].startswith('precision: fp32 on cpu') and 'running int8' not in out + err
    saved = pd.read_csv(tmp_path / 'scores.csv').set_index('image')
    assert len(saved) > 256, len(saved)  # (the images with annotations)
    files = [Path(data) / image for image in saved.index]
    expected = fp32_probabilities(work.checkpoint, files)
    assert np.abs(saved[CLASS_NAMES].to_numpy() - expected).max() < 1e-5
