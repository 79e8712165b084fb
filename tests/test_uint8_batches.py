"""uint8 batches (--uint8-batches, on by default on CUDA): the loader ships the images' bytes and to_float scales
them on the training device. The values must be ToTensor's, bit for bit, so that training and validation do not
change; and the epoch's time spent waiting for batches is measured.

The uint8 path is the same code on any device, so it is run here on the CPU."""
import dataclasses
import random
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from src_files.cli import flags
from src_files.distributed import DistInfo
from src_files.evaluation.predict import predict
from src_files.helper_functions.augmentations import to_float, train_transform, uint8_batches, val_transform
from src_files.settings import OptimSettings
from src_files.training.data import SeededSamples
from src_files.training.optimisation import build_optimisation
from src_files.training.train_loop import EpochStats, Precision, data_bound_note, train_one_epoch
from small_models import small_tresnet

CPU = Precision(torch.device('cpu'))


def _photos(count=6, seed=0):
    """RGB images of different sizes: noise over gradients, and one holding each of the 256 levels."""
    rng = np.random.RandomState(seed)
    levels = np.broadcast_to(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), (16, 16, 3))
    images = [Image.fromarray(np.ascontiguousarray(levels))]
    for i in range(count - 1):
        h, w = 20 + 7 * i, 48 - 5 * i
        base = np.linspace(0, 255, w)[None, :, None] * rng.uniform(0.2, 1, (1, 1, 3)) + rng.normal(0, 30, (h, w, 3))
        images.append(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)))
    return images


def _apply(transform, images, seed=0):
    out = []
    for i, image in enumerate(images):
        random.seed(seed + i)  # (the augmentations draw from `random`, as SeededSamples seeds it per sample)
        out.append(transform(image))
    return torch.stack(out)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_uint8_transforms_scaled_on_the_device_equal_totensor_bit_for_bit(dtype):
    images = _photos()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # ToTensor gives the default dtype, and so must to_float
    try:
        for floats, uint8 in ((val_transform(24), val_transform(24, uint8=True)),
                              (train_transform(24), train_transform(24, uint8=True))):
            expected, raw = _apply(floats, images), _apply(uint8, images)
            assert raw.dtype == torch.uint8 and expected.dtype == dtype
            got = to_float(raw)
            assert got.dtype == dtype and torch.equal(got, expected)
        assert to_float(expected) is expected  # float batches pass as they are
        # every level: ToTensor of the 16x16 image holding 0..255
        levels = transforms.ToTensor()(images[0])[0].flatten()
        assert torch.equal(to_float(torch.arange(256, dtype=torch.uint8)), levels)
        # what a GPU's division by a scalar computes (x * (1/255)) is not that: the table is needed
        assert (torch.arange(256).to(dtype) * (1 / 255) != levels).sum() > 0  # (126 levels in float32)
    finally:
        torch.set_default_dtype(previous)


class _Images(Dataset):
    """(transform(image), target) pairs of in-memory images, optionally slow to load."""

    def __init__(self, images, transform, classes=5, delay=0.0):
        self.images, self.transform, self.delay = images, transform, delay
        self.targets = (torch.rand(len(images), classes, generator=torch.Generator().manual_seed(3)) < 0.4).float()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        time.sleep(self.delay)
        return self.transform(self.images[i]), self.targets[i]


def _train(uint8, images):
    torch.manual_seed(0)
    model = small_tresnet(5, layers=(1, 1, 1, 1), decoder_embedding=64)
    data = SeededSamples(_Images(images, train_transform(32, uint8=uint8)), seed=7)
    loader = DataLoader(data, batch_size=4, shuffle=False)
    parts = build_optimisation(model, OptimSettings(epochs=1, lr=1e-3, weight_decay=1e-4, ema_decay=0.9), len(loader))
    torch.manual_seed(1)  # (dropout)
    stats = train_one_epoch(model, parts, loader, CPU)
    return model, parts, stats


def test_training_on_uint8_batches_equals_training_on_float_batches():
    images = [image.resize((40, 36)) for image in _photos(8)]
    model_f, parts_f, stats_f = _train(False, images)
    model_u, parts_u, stats_u = _train(True, images)
    assert stats_u.loss == stats_f.loss
    for (name, a), b in zip(model_f.state_dict().items(), model_u.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(parts_f.ema.module.state_dict().values(), parts_u.ema.module.state_dict().values()):
        assert torch.equal(a, b)


def test_validation_scores_of_uint8_batches_equal_those_of_float_batches():
    torch.manual_seed(0)
    model = small_tresnet(5, layers=(1, 1, 1, 1), decoder_embedding=64).eval()
    images = _photos(7)
    results = [predict(model, _Images(images, val_transform(32, uint8=uint8)), DistInfo(), 3, 0)
               for uint8 in (False, True)]
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])


class _Slow(nn.Module):
    def __init__(self, delay):
        super().__init__()
        self.fc, self.delay = nn.Linear(3 * 8 * 8, 5), delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.fc(x.flatten(1))


@pytest.mark.parametrize('data_delay,model_delay,waiting', [(0.03, 0.0, True), (0.0, 0.06, False)])
def test_epoch_measures_the_time_spent_waiting_for_batches(data_delay, model_delay, waiting):
    images = [Image.new('RGB', (8, 8), (i, 2 * i, 3 * i)) for i in range(8)]
    loader = DataLoader(_Images(images, val_transform(8), delay=data_delay), batch_size=2)
    model = _Slow(model_delay)
    stats = train_one_epoch(model, build_optimisation(model, OptimSettings(epochs=1, lr=1e-3, weight_decay=1e-4, ema_decay=0.9), len(loader)), loader, CPU)
    # a step waits for its 2 images (0.06 s), or the model takes 0.06 s after a load of nothing
    assert stats.data_seconds <= stats.seconds
    assert (stats.data_share > 0.6) if waiting else (stats.data_share < 0.3), stats
    stats = EpochStats(loss=1.0, steps=4, images=80, seconds=12.0, compile_seconds=2.0, data_seconds=4.0)
    assert stats.images_per_second == 8.0 and stats.data_share == 0.4  # compilation is left out of both
    assert '40% of the time' in data_bound_note(3, stats)
    assert '--workers 3' in data_bound_note(3, stats)
    stats = dataclasses.replace(stats, data_seconds=2.0)
    assert data_bound_note(3, stats) is None


def test_uint8_batches_flag_acts_on_cuda_only():
    parser = flags.make_parser('x')
    flags.add_speed_flags(parser, training=True)
    on = flags.parse(parser, [])[0]['uint8_batches']
    off = flags.parse(parser, ['--no-uint8-batches'])[0]['uint8_batches']
    assert uint8_batches(on, torch.device('cuda', 0)) and not uint8_batches(off, torch.device('cuda', 0))
    assert not uint8_batches(on, torch.device('cpu'))
