"""Regional torch.compile: same numbers as eager, one compiled graph per distinct block (not per copy), and
the state-dict keys unchanged. Uses the aot_eager backend (dynamo + AOT autograd, no code generation) so it
runs in seconds on a CPU; the inductor backend is timed in benchmarks/."""
import copy

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from src_files.models import create_model
from src_files.models.compile import compile_model
from small_models import small_tresnet

pytestmark = pytest.mark.slow  # (the whole module: `pytest -m "not slow"` leaves it out)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def test_regional_compile_matches_eager_and_compiles_each_distinct_block_once():
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', num_classes=7, image_size=64).train()
    model.head.eval()  # no dropout: compiled and eager random streams differ
    eager = copy.deepcopy(model)
    keys = list(model.state_dict())
    compiled = compile_model(model, 'regional', backend='aot_eager')
    assert compiled is model and list(model.state_dict()) == keys  # in place, no _orig_mod. prefix
    x = torch.rand(2, 3, 64, 64)
    out, ref = compiled(x), eager(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    for (name, p), q in zip(eager.named_parameters(), model.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    # 21 blocks of 9 distinct kinds (first/other block of each stage, stage 1 has one kind; the network's first
    # and last blocks apply their own ReLU masks, see chain_block_relus), + stem + head.
    assert counters['stats']['unique_graphs'] <= 11, dict(counters['stats'])


def test_full_compile_matches_eager_and_unknown_scope_is_refused():
    torch.manual_seed(0)
    model = small_tresnet(num_classes=3).eval()  # (every kind of block; the whole model is traced op by op)
    compiled = compile_model(model, 'full', backend='aot_eager')
    assert compiled is not model
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='regional'):
        compile_model(model, 'everything')


def test_memory_saving_model_through_inductors_partitioner_keeps_eager_gradients():
    """--lowmem under torch.compile: inductor's decompositions and min-cut partitioner (the aot_eager_decomp_partition
    backend, no code generation) around the custom norm and gated-convolution backwards, in float64: the same
    gradients and running statistics as eager, in one graph. The whole model is one graph, traced op by op: a
    TResNet with every kind of block of TResNet-M but fewer copies (small_tresnet) keeps the trace short."""
    from src_files.models.tresnet import to_lowmem
    from src_files.models.tresnet.layers import NormAct2d
    torch.manual_seed(0)
    model = small_tresnet(num_classes=4).double().train()
    model.head.eval()  # no dropout: compiled and eager random streams differ
    for m in model.modules():
        if isinstance(m, NormAct2d):
            with torch.no_grad():
                m.weight.normal_()  # random signs, and no zero-initialised norms hiding a wrong gradient
    eager = to_lowmem(copy.deepcopy(model))
    compiled = torch.compile(to_lowmem(model), backend='aot_eager_decomp_partition')
    x = torch.rand(3, 3, 64, 64, dtype=torch.float64)
    compiled(x).square().sum().backward()
    eager(x).square().sum().backward()
    for (name, p), q in zip(eager.named_parameters(), model.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-9, atol=1e-12, msg=name)
    # The running statistics are updated outside the custom autograd function (a side effect inside it broke
    # the compiled model into per-layer graphs on PyTorch 2.11): same values, and one graph.
    for (name, b), c in zip(eager.named_buffers(), model.buffers()):
        torch.testing.assert_close(c, b, rtol=1e-12, atol=1e-12, msg=name)
    assert counters['stats']['unique_graphs'] == 1


def test_regional_compile_keeps_no_relu_mask_per_block():
    """Compiled block by block, inductor's min-cut partitioner keeps each block's final-ReLU mask (one byte per
    output element), not knowing that the next block keeps the ReLU's output: chain_block_relus, which
    compile_model applies, hands the mask on. Saved bytes counted with saved-tensor hooks under inductor's
    partitioner without code generation (aot_eager_decomp_partition)."""
    from src_files.models.tresnet import BasicBlock, Bottleneck, chain_block_relus, to_lowmem

    def model_and_input():
        torch.manual_seed(0)
        return to_lowmem(create_model(model_name='tresnet_m', num_classes=4, image_size=64).train()), \
            torch.rand(2, 3, 64, 64)

    def saved_bytes(chain):
        torch._dynamo.reset()
        model, x = model_and_input()
        compile_model(model, 'regional', backend='aot_eager_decomp_partition')
        chain_block_relus(model, chain)  # before the first call, which compiles
        model(x).sum().backward()
        saved = {}

        def pack(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        out.sum().backward()
        return sum(saved.values())

    model, x = model_and_input()
    sizes = []
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    for block in blocks[:-1]:  # the last block keeps its own ReLU
        block.register_forward_hook(lambda m, i, o: sizes.append(o.numel()))
    model(x)
    chained, unchained = saved_bytes(True), saved_bytes(False)
    assert unchained - chained >= 0.9 * sum(sizes), (unchained, chained, sum(sizes))  # ~1 byte per element


@pytest.mark.parametrize('scope', ['full', 'regional'])
def test_inductor_gets_the_mode_and_the_recompute_thresholds(scope, monkeypatch):
    """torch.compile takes a mode or inductor options, not both: compile_model passes the mode's options plus
    RECOMPUTE_OPTIONS (or only the mode's with recompute=False), and inductor knows every key."""
    import torch._inductor.config as inductor_config
    from src_files.models.compile import RECOMPUTE_OPTIONS
    calls = []
    monkeypatch.setattr(torch, 'compile', lambda *args, **kwargs: calls.append(kwargs) or args[0])
    model = create_model(model_name='tresnet_m', num_classes=3, image_size=64)
    compile_model(model, scope, 'reduce-overhead')
    compile_model(model, scope, 'max-autotune', recompute=False)
    n = len(calls) // 2  # regional: one call per compiled region
    assert all('mode' not in kw for kw in calls)
    assert all(kw['options'] == {'triton.cudagraphs': True, **RECOMPUTE_OPTIONS} for kw in calls[:n])
    assert all(kw['options']['max_autotune'] and not set(RECOMPUTE_OPTIONS) & set(kw['options']) for kw in calls[n:])
    assert all(hasattr(inductor_config, key) for key in RECOMPUTE_OPTIONS)


def test_gemm_autotune_adds_its_options_to_the_mode_and_inductor_knows_them():
    import torch._inductor.config as inductor_config
    from src_files.models.compile import GEMM_AUTOTUNE_OPTIONS, RECOMPUTE_OPTIONS, compile_options
    assert compile_options('reduce-overhead', gemm_autotune=True) == {
        'triton.cudagraphs': True, **RECOMPUTE_OPTIONS, **GEMM_AUTOTUNE_OPTIONS}
    assert not set(GEMM_AUTOTUNE_OPTIONS) & set(compile_options('reduce-overhead'))
    assert all(hasattr(inductor_config, key) for key in GEMM_AUTOTUNE_OPTIONS)


def test_inductor_accepts_the_recompute_options():
    from src_files.models.compile import compile_options
    f = torch.compile(lambda x: (x - x.mean()).relu() * 2, options=compile_options(None))
    x = torch.randn(8, 4)
    torch.testing.assert_close(f(x), (x - x.mean()).relu() * 2)


def test_inductor_with_the_recompute_options_keeps_eager_gradients():
    """Inductor's generated code (CPU) for a memory-saving Bottleneck under RECOMPUTE_OPTIONS: the gradients of
    eager, to float32 rounding."""
    from src_files.models.compile import compile_options
    from src_files.models.tresnet import Bottleneck, to_lowmem
    torch.manual_seed(0)
    block = to_lowmem(Bottleneck(64, 16, use_se=True), True).train()
    for m in block.modules():
        if hasattr(m, 'running_var'):
            with torch.no_grad():
                m.weight.normal_()  # no zero-initialised norm hiding a wrong gradient
    eager = copy.deepcopy(block)
    x = torch.randn(4, 64, 12, 12, requires_grad=True)
    x_eager = x.detach().clone().requires_grad_()
    grad = torch.randn(4, 64, 12, 12)
    torch.compile(block, options=compile_options(None))(x).backward(grad)
    eager(x_eager).backward(grad)
    def relative_error(a, b):
        return ((a - b).norm() / b.norm()).item()
    assert relative_error(x.grad, x_eager.grad) < 1e-5  # measured: 4e-7
    for (name, p), q in zip(eager.named_parameters(), block.parameters()):
        assert relative_error(q.grad, p.grad) < 1e-4, name  # measured: at most 2e-6
