"""This project's model against the published construction (benchmarks/published_model.py), where the published code
itself cannot run: the initial weights a seed draws, and whole training runs with dropout on.

The published model there is built by the published module classes in the published order, and its norm layer
is InPlaceABN's own arithmetic (a hand-written backward that recovers the input from the output and negates the
weight gradient only where w < 0), not autograd through the forward; its head runs torch's MultiheadAttention on
[G, N, D] queries and the group FC as a per-group loop.
"""
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from src_files.helper_functions.optim import add_weight_decay
from src_files.loss_functions.losses import AsymmetricLoss
from src_files.models import create_model
from small_models import small_tresnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
from published_model import _InPlaceABN, published_tresnet  # noqa: E402

SMALL = (1, 1, 2, 2)  # every kind of TResNet-M block (small_models.EVERY_KIND)


def _differing(ours, published):
    """Keys of the published state dict whose tensors differ in ours (ours also has num_batches_tracked)."""
    ours, published = ours.state_dict(), published.state_dict()
    assert list(published) == [k for k in ours if k in published]  # same keys, in the same order
    return [k for k, v in published.items() if not torch.equal(ours[k], v)]


def test_a_seed_draws_the_published_initial_weights():
    torch.manual_seed(3)
    ours = create_model(model_name='tresnet_m', num_classes=10)
    torch.manual_seed(3)
    published = published_tresnet('tresnet_m', num_classes=10)
    assert _differing(ours, published) == []
    # what is compared is the draws: another seed differs everywhere something is drawn
    torch.manual_seed(4)
    other = published_tresnet('tresnet_m', num_classes=10)
    assert len(_differing(ours, other)) > 100


class _BatchMajorDropout(nn.Dropout):
    """Dropout on the published [G, N, D] layout that draws its mask in this project's [N, G, D] order, so that both
    heads drop the same elements. Otherwise each draws the same random numbers onto other elements."""

    def forward(self, x):
        return super().forward(x.transpose(0, 1).contiguous()).transpose(0, 1)


def _masks_in_batch_order(model):
    layer = model.head.decoder.layers[0]
    for name in ('dropout', 'dropout1', 'dropout2', 'dropout3'):  # (attention dropout is [N * heads, G, L] in both)
        setattr(layer, name, _BatchMajorDropout(getattr(layer, name).p))
    return model


def _train(build, dropout_seed, steps=6, batch=4):
    """The published loop (Adam on add_weight_decay's groups, OneCycle, ASL) for `steps` batches of 64 px images,
    float64, dropout on -> (model, eval-mode logits of two more images)."""
    torch.manual_seed(0)
    model = build().double()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(steps + 1, batch, 3, 64, 64, generator=g, dtype=torch.float64)
    targets = (torch.rand(steps, batch, 10, generator=g) < 0.3).double()
    criterion = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True)
    optimizer = torch.optim.Adam(add_weight_decay(model, 1e-4), lr=1e-3, weight_decay=0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, steps_per_epoch=steps, epochs=1,
                                                    pct_start=0.2)
    torch.manual_seed(dropout_seed)
    model.train()
    for x, y in zip(images[:steps], targets):
        loss = criterion(model(x), y)
        model.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    model.eval()
    with torch.no_grad():
        return model, model(images[steps])


def _published_small():
    return _masks_in_batch_order(published_tresnet(SMALL, num_classes=10, decoder_embedding=64))


def test_training_with_dropout_on_follows_the_published_model():
    """Same seed, same batches of 4, dropout on with the same masks, float64: after 6 steps the same weights, running
    statistics and eval-mode logits, although some zero-initialised norm weights have turned negative on the way
    (the branch of |w| + eps where the compiled package negates the gradient)."""
    ours, ours_logits = _train(lambda: small_tresnet(10, layers=SMALL, decoder_embedding=64), dropout_seed=0)
    published, published_logits = _train(_published_small, dropout_seed=0)
    o, p = ours.state_dict(), published.state_dict()
    assert max((o[k] - v).abs().max().item() for k, v in p.items()) < 1e-9
    assert (ours_logits - published_logits).abs().max().item() < 1e-9
    zero_init = [v for k, v in p.items() if k.endswith(('conv2.1.weight', 'conv3.1.weight')) and 'layer1' in k]
    assert any((v < 0).any() for v in zero_init)

    # The comparison is sharp: other dropout draws move the weights far more than the tolerance.
    other, _ = _train(_published_small, dropout_seed=1)
    assert max((other.state_dict()[k] - v).abs().max().item() for k, v in p.items()) > 1e-3


def _abn(x, w, b, training, slope):
    mean, var = torch.zeros(x.shape[1], dtype=x.dtype), torch.ones(x.shape[1], dtype=x.dtype)
    return _InPlaceABN.apply(x, w, b, mean, var, training, 0.1, 1e-5, slope)


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('slope', [0.01, None])
def test_the_reference_norm_backward_is_the_derivative_of_its_forward(training, slope):
    """The reference InPlaceABN's hand-written backward against finite differences (weights away from 0, where
    |w| is differentiable), and at w = 0 the compiled package's convention: the gradient of the scale as if w > 0."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.7, -0.4, 1.3, -2.0], dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: _abn(x, w, b, training, slope), (x, w, b))

    w0 = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64)
    _abn(x, w0, b, training, slope).backward(dy)
    x, b = x.detach(), b.detach()
    if training:
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    else:
        mean, var = torch.zeros(4, dtype=x.dtype), torch.ones(4, dtype=x.dtype)
    xhat = (x - mean[:, None, None]) / torch.sqrt(var + 1e-5)[:, None, None]
    z = xhat * 1e-5 + b[:, None, None]  # scale |0| + eps
    dz = dy if slope is None else torch.where(z >= 0, dy, dy * slope)
    expected = (dz * xhat).sum((0, 2, 3))  # d(|w| + eps)/dw = +1 at w = 0
    assert torch.allclose(w0.grad, expected, rtol=1e-6, atol=1e-9) and expected.abs().min() > 1e-3
