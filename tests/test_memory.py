"""The memory estimate train.py makes before its first step (src_files/training/memory.py), and the default output
folder named after the data."""
import os

import pytest
import torch

import train
from src_files.cli import flags, resolve
from src_files.data.demo import demo_coco_root
from src_files.training import memory
from tests.script_calls import assert_user_error, call_main

GIB = 1024 ** 3


def test_the_estimate_scales_activations_by_pixels_and_batch():
    fixed, per_image = memory.MEASURED['tresnet_l']
    assert memory.estimate_bytes('tresnet_l', 224, 1) == pytest.approx((fixed + per_image) * GIB)
    assert memory.estimate_bytes('tresnet_l', 448, 8) == pytest.approx((fixed + 32 * per_image) * GIB)
    assert memory.estimate_bytes('tresnet_l', 448, 8, 'cuda', 'bf16') == pytest.approx((fixed + 16 * per_image) * GIB)
    assert memory.estimate_bytes('resnet50', 224, 8) is None  # (not in the table: not checked)
    for name in ('tresnet_m', 'tresnet_l', 'tresnet_xl'):  # bigger models need more, at every batch
        assert memory.estimate_bytes(name, 448, 8) > memory.estimate_bytes(name, 224, 8) > 0


def test_what_fits_gives_the_largest_batch_then_a_smaller_image():
    need_32 = memory.estimate_bytes('tresnet_m', 224, 32)
    assert memory.what_fits('tresnet_m', 224, 56, need_32 + 1) == '--batch-size 32'
    assert memory.what_fits('tresnet_m', 224, 56, need_32 - 1) == '--batch-size 31'
    one_at_320 = memory.estimate_bytes('tresnet_l', 320, 1)
    assert memory.what_fits('tresnet_l', 448, 56, one_at_320 + 1) == '--batch-size 1 --image-size 320'
    assert memory.what_fits('tresnet_l', 448, 56, 1) == ''
    assert memory.what_fits('tresnet_m', 224, 32, 2 * need_32 + 1, processes=2) == '--batch-size 31'


def test_available_memory_is_read_from_the_kernel():
    available, source = memory.available_bytes(torch.device('cpu'))
    if not os.path.isfile('/proc/meminfo'):
        assert available is None
        return
    with open('/proc/meminfo') as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith('MemTotal'))
    assert 0 < available <= total and source


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return demo_coco_root(cache_dir=str(tmp_path_factory.mktemp('memory')), num_train=4, num_val=2)


def test_the_default_run_on_a_23_gib_cpu_stops_before_training(data, tmp_path, capfd, monkeypatch):
    """train.py's defaults (TResNet-L, 448 px, batch 56) on a CPU with 23 GiB: one line with the estimate, what is
    available and a batch size that fits, before any folder is made."""
    monkeypatch.setattr(memory, 'available_bytes', lambda device: (23 * GIB, "available on this machine"))
    monkeypatch.chdir(tmp_path)
    code, out, err = call_main(train, ['--data', data, '--device', 'cpu'], capfd)
    line = assert_user_error(code, err, 'not enough memory: tresnet_l at 448 px, batch 56, needs about',
                             '23.0 GiB is available on this machine', 'use --batch-size ')
    batch = int(line.split('use --batch-size ')[1].split()[0])
    assert memory.estimate_bytes('tresnet_l', 448, batch) <= 23 * GIB < memory.estimate_bytes('tresnet_l', 448,
                                                                                                  batch + 1)
    assert not (tmp_path / 'outputs').exists() and 'epoch 1' not in out
    code, out, err = call_main(train, ['--data', data, '--device', 'cpu', '--no-memory-check', '--epochs', '1',
                                       '--model-name', 'tresnet_m', '--image-size', '64', '--batch-size', '2',
                                       '--stop-after', '1', '--workers', '0'], capfd)
    assert code == 0, err
    # (the output folder is named after the data's)
    assert (tmp_path / 'outputs' / os.path.basename(data) / 'best.pth').is_file()


def test_a_gpu_gets_a_note_not_a_stop(monkeypatch):
    """On a GPU an out-of-memory error is reported in one line anyway: the estimate is a note."""
    values, _ = flags.parse(train.build_parser(), ['--data', 'x'])
    settings = resolve.build_train_settings(dict(values, output_dir='o'), 'multi-label', 'train.py')
    monkeypatch.setattr(memory, 'available_bytes', lambda device: (10 * GIB, "free on cuda:0"))
    note = memory.check_memory(settings, torch.device('cuda'))
    assert note.startswith('note: tresnet_l at 448 px, batch 56, needs about') and 'try --batch-size' in note
    monkeypatch.setattr(memory, 'available_bytes', lambda device: (1000 * GIB, "free on cuda:0"))
    assert memory.check_memory(settings, torch.device('cuda')) == ''


def test_the_default_output_folder_is_named_after_the_data(tmp_path):
    assert resolve.default_output_dir('/data/my_csv/', 'train.py') == os.path.join('outputs', 'my_csv')
    assert resolve.default_output_dir('data/coco', 'train.py') == os.path.join('outputs', 'coco')
    assert resolve.default_output_dir('/data/nus_wide', 'train_zsl_nus.py') == os.path.join('outputs',
                                                                                            'nus_wide_zsl')
    values, explicit = flags.parse(train.build_parser(), ['--data', str(tmp_path / 'shapes'), '--device', 'cpu'])
    assert values['output_dir'] is None  # (resolved with the data)
