"""Losses against values and gradients computed by the published implementation (tests/reference)."""
import ast
import json
import re
from pathlib import Path

import pytest
import torch

from src_files.loss_functions import AsymmetricLoss, AsymmetricLossOptimized, ASLSingleLabel

REF = json.loads((Path(__file__).parent / 'reference' / 'losses_metrics.json').read_text())
LOSSES = {'AsymmetricLoss': AsymmetricLoss, 'AsymmetricLossOptimized': AsymmetricLossOptimized}


def build(name):
    """'AsymmetricLoss(gamma_neg=4, clip=0.05, ...)' -> the loss object with those keyword arguments."""
    cls, args = re.fullmatch(r'(\w+)\((.*)\)', name).groups()
    kwargs = {k.strip(): ast.literal_eval(v.strip()) for k, v in (a.split('=') for a in args.split(','))}
    return LOSSES[cls](**kwargs)


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def value_and_grad(loss_fn, target, dtype=torch.float64):
    x = torch.tensor(REF['logits'], dtype=dtype, requires_grad=True)
    loss = loss_fn(x, target)
    loss.backward()
    return loss, x.grad


@pytest.fixture
def targets():
    return torch.tensor(REF['targets'], dtype=torch.float64)


@pytest.mark.parametrize('name', sorted(REF['losses']))
def test_multilabel_matches_reference(name, targets):
    ref = REF['losses'][name]
    loss, grad = value_and_grad(build(name), targets)
    assert loss.dtype == torch.float64
    assert abs(loss.item() - ref['value']) <= 1e-6 * abs(ref['value'])
    ref_grad = torch.tensor(ref['grad'], dtype=torch.float64)
    assert rel_err(grad, ref_grad) < 1e-6
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-12)


def test_single_label_matches_reference():
    ref = REF['single_label']
    labels = torch.tensor(ref['labels'])
    assert labels.tolist() == [i % 20 for i in range(len(labels))]
    loss, grad = value_and_grad(ASLSingleLabel(**ref['kwargs']), labels)
    assert abs(loss.item() - ref['value']) <= 1e-6 * abs(ref['value'])
    ref_grad = torch.tensor(ref['grad'], dtype=torch.float64)
    assert rel_err(grad, ref_grad) < 1e-6


def test_optimized_equals_plain(targets):
    for flag in (True, False):
        kw = dict(gamma_neg=3, gamma_pos=1, clip=0.1, disable_torch_grad_focal_loss=flag)
        a, ga = value_and_grad(AsymmetricLoss(**kw), targets)
        b, gb = value_and_grad(AsymmetricLossOptimized(**kw), targets)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
        torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize('loss_fn', [AsymmetricLoss(disable_torch_grad_focal_loss=True),
                                     AsymmetricLossOptimized(disable_torch_grad_focal_loss=True),
                                     AsymmetricLoss(disable_torch_grad_focal_loss=False),
                                     ASLSingleLabel()])
@pytest.mark.parametrize('outer_grad', [True, False])
def test_grad_mode_untouched(loss_fn, outer_grad, targets):
    target = torch.arange(16) % 20 if isinstance(loss_fn, ASLSingleLabel) else targets
    x = torch.tensor(REF['logits'], dtype=torch.float64)
    with torch.set_grad_enabled(outer_grad):
        loss_fn(x, target)
        assert torch.is_grad_enabled() == outer_grad


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_lower_precision(dtype, targets):
    tol = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 3e-2}[dtype]
    name = 'AsymmetricLoss(gamma_neg=4, gamma_pos=1, clip=0.05, disable_torch_grad_focal_loss=False)'
    ref = REF['losses'][name]
    for loss_fn in (build(name), build(name.replace('AsymmetricLoss', 'AsymmetricLossOptimized'))):
        loss, grad = value_and_grad(loss_fn, targets.to(dtype), dtype)
        assert torch.isfinite(loss) and grad.dtype == dtype
        assert abs(loss.item() - ref['value']) <= tol * ref['value']
        assert rel_err(grad.double(), torch.tensor(ref['grad'])) < tol


def published_elementwise(x, y, gamma_neg=4, gamma_pos=0, clip=0.05, eps=1e-8):
    """The published ASL per entry (before the sum), in float64, for 0/1 targets."""
    p = torch.sigmoid(x)
    p_neg = (1 - p + clip).clamp(max=1)
    loss = y * torch.log(p.clamp(min=eps)) + (1 - y) * torch.log(p_neg.clamp(min=eps))
    pt = p * y + p_neg * (1 - y)
    return -loss * torch.pow(1 - pt, gamma_pos * y + gamma_neg * (1 - y))


@pytest.mark.parametrize('cls', [AsymmetricLoss, AsymmetricLossOptimized])
def test_unknown_targets_add_nothing_to_loss_or_gradient(cls, targets):
    unknown = torch.rand(targets.shape, generator=torch.Generator().manual_seed(0)) < 0.3
    partial = torch.where(unknown, -1.0, targets)
    loss_fn = cls(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True)
    loss, grad = value_and_grad(loss_fn, partial)
    x = torch.tensor(REF['logits'], dtype=torch.float64)
    expected = published_elementwise(x, targets)[~unknown].sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert torch.all(grad[unknown] == 0)
    _, full_grad = value_and_grad(loss_fn, targets)
    torch.testing.assert_close(grad[~unknown], full_grad[~unknown], rtol=0, atol=0)


def test_unknown_as_negative_trains_them_as_negatives(targets):
    unknown = torch.rand(targets.shape, generator=torch.Generator().manual_seed(1)) < 0.3
    partial = torch.where(unknown, -1.0, targets)
    as_negative = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, unknown_as_negative=True)
    loss, _ = value_and_grad(as_negative, partial)
    x = torch.tensor(REF['logits'], dtype=torch.float64)
    expected = published_elementwise(x, torch.where(unknown, 0.0, targets)).sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
