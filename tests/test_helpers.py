"""Model EMA, weight-decay parameter groups and image transforms."""
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from src_files.helper_functions.augmentations import CutoutPIL, RandAugment, train_transform, val_transform
from src_files.helper_functions.ema import ModelEma
from src_files.helper_functions.optim import add_weight_decay


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Embedding(3, 4)
        self.frozen.weight.requires_grad_(False)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def test_ema_follows_formula():
    torch.manual_seed(0)
    model, decay = Small(), 0.9
    ema = ModelEma(model, decay=decay)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.rand(2, 3, 6, 6))  # moves the BN running stats and num_batches_tracked
        ema.update(model)
        for k, v in model.state_dict().items():
            expected[k] = decay * expected[k] + (1 - decay) * v if v.is_floating_point() else v.clone()
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-6, atol=1e-6)
    assert ema.module.state_dict()['bn.num_batches_tracked'].item() == 3
    assert not ema.module.training
    ema.set(model)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ema.module.state_dict()[k], v, rtol=0, atol=0)


def test_ema_follows_the_model_after_its_tensors_are_replaced():
    """Replacing a model tensor (.data =, .to(), assign=True) must not leave the EMA averaging the old one (it
    pairs tensors by state-dict key at every update, so it must never hold on to the old objects)."""
    torch.manual_seed(0)
    model, decay = Small(), 0.5
    ema = ModelEma(model, decay=decay)
    ema.update(model)

    def check_one_update():
        before = {k: v.clone() for k, v in ema.module.state_dict().items()}
        ema.update(model)
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                expected = decay * before[k] + (1 - decay) * v.to(before[k].dtype)
                torch.testing.assert_close(ema.module.state_dict()[k], expected, rtol=1e-6, atol=1e-6)

    model.fc.weight.data = torch.randn(2, 4)          # same Parameter object, new storage
    check_one_update()
    model.load_state_dict({k: torch.randn_like(v) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()}, assign=True)  # new objects
    check_one_update()
    model.double()                                     # the EMA stays float32: converted on the fly
    with torch.no_grad():
        model.conv.weight.add_(1.0)
    check_one_update()


def test_ema_unwraps_wrapped_model():
    model = Small()
    compiled = torch.compile(nn.DataParallel(model))  # not run: only the wrappers' state-dict keys matter
    ema = ModelEma(compiled, decay=0.5)
    assert set(ema.module.state_dict()) == set(model.state_dict())
    with torch.no_grad():
        model.fc.weight.add_(2.0)
    ema.update(compiled)
    torch.testing.assert_close(ema.module.fc.weight, model.fc.weight - 1.0)


def test_add_weight_decay_groups():
    model = Small()
    no_decay, decay = add_weight_decay(model, weight_decay=1e-4, skip_list=('fc.weight',))
    names = {id(p): n for n, p in model.named_parameters()}
    assert no_decay['weight_decay'] == 0 and decay['weight_decay'] == 1e-4
    assert sorted(names[id(p)] for p in no_decay['params']) == ['bn.bias', 'bn.weight', 'fc.bias', 'fc.weight']
    assert [names[id(p)] for p in decay['params']] == ['conv.weight']
    no_decay, decay = add_weight_decay(model)
    assert sorted(names[id(p)] for p in decay['params']) == ['conv.weight', 'fc.weight']


def random_image(size, mode, seed=0):
    w, h = size
    channels = {'RGB': 3, 'RGBA': 4}.get(mode)
    shape = (h, w) if channels is None else (h, w, channels)
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


SIZES_MODES = [((32, 32), 'RGB'), ((57, 23), 'RGB'), ((20, 45), 'L'), ((40, 30), 'RGBA'), ((1, 1), 'RGB')]


@pytest.mark.parametrize('size, mode', SIZES_MODES)
def test_augmentations_keep_size(size, mode):
    random.seed(1)
    img = random_image(size, mode)
    for aug in (CutoutPIL(0.5), RandAugment()):
        for _ in range(30):  # enough draws to hit most of the 15 operations
            out = aug(img)
            assert isinstance(out, Image.Image) and out.size == size and out.mode == 'RGB'


def test_cutout_paints_half_size_rectangle():
    random.seed(3)
    img = random_image((40, 40), 'RGB')
    changed = np.any(np.asarray(CutoutPIL(0.5)(img)) != np.asarray(img), axis=2)
    rows, cols = np.nonzero(changed)
    assert rows.max() - rows.min() <= 21 and cols.max() - cols.min() <= 21
    assert np.asarray(img).shape == (40, 40, 3)  # the input image is not modified


def test_randaugment_reproducible():
    img = random_image((48, 40), 'RGB')

    def run(seed):
        random.seed(seed)
        np.random.seed(seed)
        return [np.asarray(RandAugment()(img)) for _ in range(20)]

    first, second, other = run(7), run(7), run(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize('transform', [train_transform(24), train_transform(24, augment=False), val_transform(24)])
def test_transforms_give_unit_tensors(transform):
    random.seed(0)
    x = transform(random_image((50, 31), 'RGB'))
    assert x.dtype == torch.float32 and x.shape == (3, 24, 24)
    assert 0 <= x.min() and x.max() <= 1


def test_val_transform_is_pixels_over_255():
    img = random_image((16, 16), 'RGB')
    x = val_transform(16)(img)
    torch.testing.assert_close(x, torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255)
