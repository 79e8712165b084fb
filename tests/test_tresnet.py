"""TResNet and its InPlaceABN-compatible norm layer: math, training statistics, gradients, init, sizes."""
import copy
import inspect

import pytest
import torch
import torch.nn.functional as F

from src_files.models import create_model, fold_norm_layers
from src_files.models.tresnet import Bottleneck, BasicBlock, tresnet_l, tresnet_m, tresnet_xl
from src_files.models.tresnet import LowMemBottleneck, LowMemNormAct2d, chain_block_relus, to_lowmem
from src_files.models.tresnet.layers import NormAct2d, SpaceToDepth, gated_conv2d
from src_files.models.tresnet.lowmem import ChainedBasicBlock, ChainedLowMemBottleneck, PassingReLU


def randomized_norm(c, activation='leaky_relu', slope=0.01):
    torch.manual_seed(1)
    norm = NormAct2d(c, activation=activation, activation_param=slope).double()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(c))          # random signs: the scale is |w| + eps
        norm.bias.copy_(torch.randn(c) * 0.1)
        norm.running_mean.copy_(torch.randn(c) * 0.1)
        norm.running_var.copy_(torch.rand(c) + 0.5)
    return norm


def test_norm_eval_math():
    norm = randomized_norm(6).eval()
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64)
    view = (1, -1, 1, 1)
    y = (x - norm.running_mean.view(view)) / torch.sqrt(norm.running_var.view(view) + 1e-5)
    y = y * (norm.weight.abs() + 1e-5).view(view) + norm.bias.view(view)
    torch.testing.assert_close(norm(x), F.leaky_relu(y, 0.01), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(norm(x), F.leaky_relu(F.batch_norm(
        x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.1, 1e-5), 0.01))


def test_norm_training_uses_batch_stats_and_updates_running_stats_unbiased():
    norm = randomized_norm(4, activation='identity').train()
    rm0, rv0 = norm.running_mean.clone(), norm.running_var.clone()
    x = torch.randn(5, 4, 3, 3, dtype=torch.float64) * 2 + 1
    y = norm(x)
    mean = x.mean((0, 2, 3))
    var_biased = x.var((0, 2, 3), unbiased=False)
    var_unbiased = x.var((0, 2, 3), unbiased=True)
    expected = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var_biased.view(1, -1, 1, 1) + 1e-5)
    expected = expected * (norm.weight.abs() + 1e-5).view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(norm.running_mean, 0.9 * rm0 + 0.1 * mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(norm.running_var, 0.9 * rv0 + 0.1 * var_unbiased, rtol=1e-12, atol=1e-12)
    assert norm.num_batches_tracked.item() == 1


def test_norm_weight_gradient_sign_is_plus_one_at_zero():
    norm = randomized_norm(3, activation='identity').eval()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.0, -0.7, 0.4]))
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    norm(x).sum().backward()
    xhat = (x - norm.running_mean.view(1, -1, 1, 1)) / torch.sqrt(norm.running_var.view(1, -1, 1, 1) + 1e-5)
    d_scale = xhat.sum((0, 2, 3))
    torch.testing.assert_close(norm.weight.grad, d_scale * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    assert norm.weight.grad[0] != 0  # a zero-initialised norm must be able to move


def test_zero_init_of_the_last_norm_of_each_block():
    model = tresnet_m(num_classes=10)
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(blocks) == 3 + 4 + 11 + 3
    for block in blocks:
        assert torch.all(block.last_norm().weight == 0)
        assert torch.all(block.conv1[0][1].weight == 1) if isinstance(block.conv1[0], torch.nn.Sequential) \
            else torch.all(block.conv1[1].weight == 1)


def test_running_stats_after_a_training_forward_match_the_conv_outputs():
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', num_classes=5).double()
    norms = [m for m in model.modules() if isinstance(m, NormAct2d)]
    watched = norms[:3] + norms[-3:]
    inputs = {}
    hooks = [n.register_forward_pre_hook(lambda mod, args: inputs.__setitem__(mod, args[0].detach().clone()))
             for n in watched]
    model.train()
    before = {n: (n.running_mean.clone(), n.running_var.clone()) for n in watched}
    model(torch.rand(3, 3, 64, 64, dtype=torch.float64))
    for h in hooks:
        h.remove()
    for n in watched:
        x = inputs[n]
        rm, rv = before[n]
        torch.testing.assert_close(n.running_mean, 0.9 * rm + 0.1 * x.mean((0, 2, 3)), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(n.running_var, 0.9 * rv + 0.1 * x.var((0, 2, 3), unbiased=True),
                                   rtol=1e-10, atol=1e-12)


@pytest.fixture(scope='module')
def model_and_folded():
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', num_classes=7).eval()
    with torch.no_grad():
        for n in model.modules():
            if isinstance(n, NormAct2d):
                n.weight.normal_()
                n.running_var.uniform_(0.5, 1.5)
    return model, fold_norm_layers(copy.deepcopy(model))


@pytest.mark.parametrize('size', [64, 100, 200])
def test_sizes_that_are_not_multiples_of_32(model_and_folded, size):
    model, folded_model = model_and_folded
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        out = model(x)
        folded = folded_model(x)
    assert out.shape == (2, 7)
    torch.testing.assert_close(folded, out, rtol=1e-4, atol=1e-4)


def test_size_not_divisible_by_4_is_a_clear_error():
    with pytest.raises(ValueError, match='divisible by 4'):
        SpaceToDepth()(torch.rand(1, 3, 66, 64))


def test_space_to_depth_layout():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    y = SpaceToDepth()(x)
    assert y.shape == (2, 48, 2, 2)
    # channel index = (row offset * 4 + col offset) * C + c
    assert y[1, (2 * 4 + 3) * 3 + 1, 1, 0] == x[1, 1, 4 + 2, 0 + 3]


@pytest.mark.parametrize('factory,blocks,bottleneck_stages', [(tresnet_l, [3, 4, 23, 3], 4),
                                                               (tresnet_xl, [3, 8, 34, 5], 4)])
def test_large_variants_structure(factory, blocks, bottleneck_stages):
    model = factory(num_classes=3)
    assert model.num_features == 2048
    for i, n in enumerate(blocks):
        layer = getattr(model.body, f'layer{i + 1}')
        assert len(layer) == n and all(isinstance(b, Bottleneck) for b in layer)
    keys = model.state_dict().keys()
    assert 'body.layer1.0.downsample.0.0.weight' in keys      # stride-1 shortcut: a single conv_abn
    assert 'body.layer2.0.downsample.1.0.weight' in keys      # stride 2: avg-pool first
    assert 'body.layer2.0.conv2.0.0.weight' in keys           # anti-aliased conv2 in a Bottleneck
    assert not any(k.endswith('filt') for k in keys)          # the blur filter is not saved
    assert 'body.layer4.0.se.fc1.weight' not in keys          # no squeeze-excite in stage 4
    assert model.body.layer1[0].se.fc1.out_channels == 64     # max(64 * 4 // 8, 64)
    assert model.body.layer3[0].se.fc1.out_channels == 128    # max(256 * 4 // 8, 64)


@pytest.mark.parametrize('activation', ['leaky_relu', 'identity'])
@pytest.mark.parametrize('training', [True, False])
def test_memory_efficient_norm_matches_the_standard_one(activation, training):
    norm = randomized_norm(5, activation=activation, slope=0.01)
    with torch.no_grad():
        norm.weight[0] = 0.0  # the |w| gradient convention at zero must hold here too
    light = to_lowmem(copy.deepcopy(norm))
    assert type(light) is LowMemNormAct2d
    norm.train(training), light.train(training)
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    grad = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    norm(x).backward(grad)
    light(x2).backward(grad)
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(light.weight.grad, norm.weight.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(light.bias.grad, norm.bias.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(light.running_var, norm.running_var, rtol=1e-12, atol=1e-12)


def _reference_norm(norm, x):
    """NormAct2d written out of place from its parameters (independent of the module's forward)."""
    scale = norm.weight.abs() + norm.eps
    y = F.batch_norm(x, norm.running_mean.clone(), norm.running_var.clone(), scale, norm.bias, True, 0.1, norm.eps)
    return F.leaky_relu(y, norm.activation_param) if norm.activation == 'leaky_relu' else y


def _reference_conv_norm(seq, x):
    conv, norm = seq[0], seq[1]
    return _reference_norm(norm, F.conv2d(x, conv.weight, stride=conv.stride, padding=conv.padding))


def _reference_bottleneck(block, x):
    """A stride-1 Bottleneck without in-place ops: relu(conv3(se(conv2(conv1(x)))) + x)."""
    out = _reference_conv_norm(block.conv2, _reference_conv_norm(block.conv1, x))
    gate = F.conv2d(F.relu(F.conv2d(out.mean((2, 3), keepdim=True), block.se.fc1.weight, block.se.fc1.bias)),
                    block.se.fc2.weight, block.se.fc2.bias).sigmoid()
    out = _reference_conv_norm(block.conv3, out * gate)
    return F.relu(out + x)


def test_in_place_block_matches_an_out_of_place_reference_and_saves_less():
    """The block's in-place activations change nothing in values or gradients (float64), and
    autograd keeps less for backward than the out-of-place computation."""
    torch.manual_seed(0)
    block = Bottleneck(64, 16, use_se=True).double().train()
    for m in block.modules():
        if isinstance(m, NormAct2d):
            with torch.no_grad():
                m.weight.normal_()  # also the zero-initialised last norm: exercise every path
    x = torch.randn(2, 64, 12, 12, dtype=torch.float64)
    grad = torch.randn(2, 64, 12, 12, dtype=torch.float64)

    def run(forward):
        block.zero_grad()
        xi = x.clone().requires_grad_()
        saved = {}

        def pack(t):
            if t.numel() >= 2 * 16 * 12 * 12:  # activation-sized tensors only
                saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = forward(xi)
        y.backward(grad)
        grads = [p.grad.clone() for p in block.parameters()]
        return y.detach(), xi.grad, grads, sum(saved.values())

    y, dx, dparams, saved_bytes = run(block)
    y_ref, dx_ref, dparams_ref, saved_bytes_ref = run(lambda t: _reference_bottleneck(block, t))
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-10, atol=1e-12)
    for g, g_ref in zip(dparams, dparams_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    # The two leaky-ReLU norms overwrite their output in place: two [2, 16, 12, 12] tensors fewer are kept.
    assert saved_bytes <= saved_bytes_ref - 2 * (2 * 16 * 12 * 12 * 8), (saved_bytes, saved_bytes_ref)


def test_memory_efficient_model_trains_with_the_same_gradients():
    """Model level (memory-saving norms and squeeze-excite products): the output the memory-saving norm keeps
    must not be overwritten later in the block."""
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', num_classes=5, image_size=64).double().train()
    light = to_lowmem(copy.deepcopy(model))
    assert type(light.body.layer3[0]) is LowMemBottleneck and type(light.body.layer3[0].conv1[1]) is LowMemNormAct2d
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    for m in (model, light):
        torch.manual_seed(1)  # the same dropout masks in the head
        m(x).sum().backward()
    for (name, p), q in zip(model.named_parameters(), light.parameters()):
        if p.grad is None:  # the head's unused query embedding
            assert q.grad is None
            continue
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-7, atol=1e-10, msg=name)


def test_memory_efficient_norm_in_bfloat16_is_as_accurate_as_the_standard_one():
    """bf16 activations, fp32 parameters (what autocast gives), against the same layer in float64: the
    memory-saving path recovers its input from the bf16 output and must stay within bf16 rounding (measured:
    2e-3 on the weight gradient, 1.4e-3 on the input gradient)."""
    reference = randomized_norm(6).train()
    norm = randomized_norm(6).float().train()
    light = to_lowmem(copy.deepcopy(norm))
    torch.manual_seed(0)
    x = (torch.randn(4, 6, 8, 8) * 3 + 1).bfloat16()
    grad = torch.randn(4, 6, 8, 8).bfloat16()
    results = []
    for m, dtype in ((reference, torch.float64), (norm, torch.bfloat16), (light, torch.bfloat16)):
        xi = x.to(dtype).clone().requires_grad_()  # .to() of the same dtype would return x itself
        y = m(xi)
        y.backward(grad.to(dtype))
        results.append([t.double() for t in (y, xi.grad, m.weight.grad, m.bias.grad)])
    for name, ref, std, low in zip(('output', 'input grad', 'weight grad', 'bias grad'), *results):
        error = lambda t: ((t - ref).norm() / ref.norm()).item()  # noqa: E731
        assert error(std) < 5e-3 and error(low) < 5e-3, (name, error(std), error(low))
    torch.testing.assert_close(light.running_var, norm.running_var, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kernel,stride,padding', [(1, 1, 0), (3, 2, 1)])
def test_gated_conv_matches_the_convolution_of_the_product(kernel, stride, padding):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 5, kernel, stride, padding, bias=False).double()
    x = torch.randn(3, 6, 8, 8, dtype=torch.float64)
    gate = torch.rand(3, 6, 1, 1, dtype=torch.float64)
    results = []
    for forward in (lambda a, g: conv(a * g), lambda a, g: gated_conv2d(a, g, conv)):
        conv.zero_grad()
        a, g = x.clone().requires_grad_(), gate.clone().requires_grad_()
        y = forward(a, g)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=torch.float64).view_as(y))
        results.append((y.detach(), a.grad, g.grad, conv.weight.grad.clone()))
    for name, ref, got in zip(('output', 'x grad', 'gate grad', 'weight grad'), *results):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12, msg=name)


def test_gated_conv_under_bf16_autocast_matches_autocast_of_the_plain_ops():
    """bf16 activations, fp32 weight: the backward runs in the forward's dtypes, as autocast's would."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 32, 1, bias=False)
    x = torch.randn(2, 16, 6, 6).bfloat16()
    gate = torch.rand(2, 16, 1, 1).bfloat16()
    results = []
    for forward in (lambda a, g: conv(a * g), lambda a, g: gated_conv2d(a, g, conv)):
        conv.zero_grad()
        a, g = x.clone().requires_grad_(), gate.clone().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            y = forward(a, g)
        y.float().square().sum().backward()
        results.append((y, a.grad, g.grad, conv.weight.grad))
    for name, ref, got in zip(('output', 'x grad', 'gate grad', 'weight grad'), *results):
        assert got.dtype == ref.dtype, name
        torch.testing.assert_close(got, ref, msg=name)


def test_memory_efficient_bottleneck_keeps_no_squeeze_excite_product():
    """Same values and gradients (float64); autograd keeps one [N, planes, H, W] tensor fewer."""
    torch.manual_seed(0)
    block = Bottleneck(64, 16, use_se=True).double().train()
    light = copy.deepcopy(block)
    light.__class__ = LowMemBottleneck  # the block alone: its norms stay standard
    x = torch.randn(2, 64, 12, 12, dtype=torch.float64)
    results = []
    for m in (block, light):
        saved = {}

        def pack(t):
            if t.numel() >= 2 * 16 * 12 * 12:
                saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        xi = x.clone().requires_grad_()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = m(xi)
        y.backward(torch.ones_like(y))
        results.append((y.detach(), xi.grad, [p.grad for p in m.parameters()], sum(saved.values())))
    (y, dx, dp, kept), (y2, dx2, dp2, kept2) = results
    torch.testing.assert_close(y2, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx2, dx, rtol=1e-10, atol=1e-12)
    for g, g2 in zip(dp, dp2):
        torch.testing.assert_close(g2, g, rtol=1e-10, atol=1e-12)
    assert kept2 == kept - 2 * 16 * 12 * 12 * 8, (kept, kept2)


def test_chained_block_relus_give_the_same_outputs_and_gradients():
    """chain_block_relus (for block-by-block compilation) moves only where the ReLU masks are applied in
    backward: float64, the same outputs, input gradient and parameter gradients."""
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', num_classes=5).double().train()
    model.head.eval()
    for m in model.modules():
        if isinstance(m, NormAct2d):
            with torch.no_grad():
                m.weight.normal_()  # no zero-initialised residual branches
    chained = chain_block_relus(copy.deepcopy(model))
    assert sum(type(m) is PassingReLU for m in chained.modules()) == 21 - 1
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    results = []
    for m in (model, chained):
        xi = x.clone().requires_grad_()
        y = m(xi)
        y.square().sum().backward()
        results.append((y.detach(), xi.grad, [p.grad for p in m.parameters()]))
    (y, dx, dp), (y2, dx2, dp2) = results
    torch.testing.assert_close(y2, y, rtol=0, atol=0)
    torch.testing.assert_close(dx2, dx, rtol=1e-12, atol=1e-14)
    for g, g2 in zip(dp, dp2):
        torch.testing.assert_close(g2, g, rtol=1e-12, atol=1e-14)


def test_folding_keeps_a_channels_last_model_channels_last():
    """A compiled channels-last model would otherwise convert every folded 3x3 weight on every call."""
    model = create_model(model_name='tresnet_m', num_classes=3, image_size=64).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.eval()(x)
        folded = fold_norm_layers(model)
        convs = [m for m in folded.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
        assert not any(c.weight.requires_grad is False for c in convs)  # still parameters, as before folding
        torch.testing.assert_close(folded(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('cls', [NormAct2d, BasicBlock, Bottleneck])
def test_reference_forwards_have_no_speed_switches(cls):
    """The reference modules read like the published TResNet: the memory-saving code lives in lowmem.py."""
    source = inspect.getsource(cls.forward)
    for word in ('memory_efficient', 'relu_grad', 'lowmem', 'gated_conv2d', 'inplace_abn', 'mask_grad_by_sign',
                 'relu_passing_grad', 'is_grad_enabled'):
        assert word not in source, (cls.__name__, word)
    module = cls(16) if cls is NormAct2d else cls(64, 16)
    assert not {'memory_efficient', 'relu_grad_to_next', 'relu_grad_from_previous'} & set(vars(module))


def test_to_lowmem_and_back_restores_the_reference_classes_and_state_dict():
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', num_classes=5, image_size=64)
    classes = [type(m) for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    parameters = list(model.parameters())
    to_lowmem(model)
    assert type(model.body.conv1[1]) is LowMemNormAct2d and type(model.body.layer4[0]) is LowMemBottleneck
    assert list(model.state_dict()) == list(state) and list(model.parameters()) == parameters
    to_lowmem(model, False)
    assert [type(m) for m in model.modules()] == classes
    assert list(model.state_dict()) == list(state) and list(model.parameters()) == parameters
    chain_block_relus(to_lowmem(model))  # both, and back in the other order
    swapped = {type(m) for m in model.modules()}
    assert {LowMemNormAct2d, ChainedBasicBlock, ChainedLowMemBottleneck, PassingReLU} <= swapped
    assert not any(type(m) in (NormAct2d, Bottleneck) for m in model.modules())
    assert list(model.state_dict()) == list(state) and list(model.parameters()) == parameters
    to_lowmem(chain_block_relus(model, False), False)
    assert [type(m) for m in model.modules()] == classes
    assert list(model.state_dict()) == list(state) and list(model.parameters()) == parameters
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
