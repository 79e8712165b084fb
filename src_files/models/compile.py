"""torch.compile for the models: the whole model, or block by block ("regional").

TResNet-L repeats a handful of distinct residual blocks 33 times. Compiling the whole model traces and
lowers every copy; compiling each block in place compiles each distinct block once and reuses it for the
copies (https://pytorch.org/tutorials/recipes/regional_compilation.html). Fusion is the same inside a block,
and a block's output is written to memory either way (it is the next block's convolution input and its
shortcut); in-place compilation also keeps the state-dict keys unchanged, and evaluation of the same module
runs compiled too. Shapes are static, so a new batch size (an epoch's last batch, evaluation) compiles once
more. On a CPU it saved no compile time and ran slower (BENCHMARKS.md), so 'full' is the default; its GPU
numbers come from benchmarks/gpu_all.sh.

Both scopes compile with inductor's store-vs-recompute thresholds raised (RECOMPUTE_OPTIONS).
"""
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from .tresnet.lowmem import chain_block_relus
from .tresnet.tresnet import BasicBlock, Bottleneck

REPEATED_BLOCKS = (BasicBlock, Bottleneck)
# torch.compile's modes; reduce-overhead and max-autotune also record CUDA graphs.
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
# Inductor stores an intermediate that several kernels share once it reads more than 4 buffers or takes more than 30
# operations, and recomputes it in each kernel otherwise. A norm's backward shares its normalized input between the
# statistics reduction and the elementwise pass; recovering it from the kept activation reads 5 buffers (the
# activation and 4 per-channel vectors), so inductor wrote a float32 copy and read it back twice (14 bytes per
# element) where recomputing it reads the 2-byte activation twice. With these thresholds the Triton kernels of a
# TResNet training step move fewer bytes, counted from the generated code without a GPU by tools/inductor_traffic.py
# (the counts are in BENCHMARKS.md).
RECOMPUTE_OPTIONS = {'realize_reads_threshold': 8, 'realize_opcount_threshold': 60}
# Autotuning of the matrix products only (gemm_autotune=True). With it, inductor runs a channels-last 1x1 convolution
# as a matrix product, and picks by measurement on the device between cuBLAS and its own Triton templates, which
# can apply what follows (bias, activation, residual add) as they write their output instead of in a pass of
# their own. The 3x3 convolutions stay with cuDNN, and no other kernel is tuned, which keeps the compile shorter
# than max-autotune's. In TResNet inference (folded norms) this removes the pass after each 1x1 convolution, counted
# without a GPU by tools/inductor_traffic.py --inference --gemm-autotune (the counts are in BENCHMARKS.md); in
# training the norms' statistics need the convolution outputs in memory anyway, and it removes nothing.
GEMM_AUTOTUNE_OPTIONS = {'max_autotune_gemm': True, 'max_autotune_conv_backends': 'ATEN'}


def uses_cuda_graphs(mode):
    """Whether torch.compile's `mode` replays CUDA graphs: one launch per graph instead of one per kernel, which
    is what a fast GPU needs when the CPU cannot launch kernels as fast as they run."""
    return mode in ('reduce-overhead', 'max-autotune')


def compile_options(mode=None, recompute=True, gemm_autotune=False):
    """torch.compile's inductor options for `mode` (what mode= sets), with RECOMPUTE_OPTIONS unless recompute=False
    and GEMM_AUTOTUNE_OPTIONS if gemm_autotune=True."""
    from torch._inductor import config, list_mode_options
    extra = {**(RECOMPUTE_OPTIONS if recompute else {}), **(GEMM_AUTOTUNE_OPTIONS if gemm_autotune else {})}
    # (keys this PyTorch's inductor does not know are left out rather than refused)
    return {**list_mode_options(mode or 'default'), **{k: v for k, v in extra.items() if hasattr(config, k)}}


def compile_model(model, scope='full', mode=None, backend='inductor', recompute=True, gemm_autotune=False):
    """Compile `model` for speed; returns the module to call. `mode`: one of COMPILE_MODES (None = default).
    recompute=False keeps inductor's own store-vs-recompute thresholds (RECOMPUTE_OPTIONS); gemm_autotune=True
    autotunes the matrix products (GEMM_AUTOTUNE_OPTIONS).

    scope='full': one `torch.compile(model)` (returns the compiled wrapper). scope='regional': compile each
    repeated block, the stem convolution and the head in place (returns `model` itself), with the blocks'
    ReLU masks handed on (chain_block_relus); models without known repeated blocks fall back to the whole model.
    """
    if scope not in ('regional', 'full'):
        raise ValueError(f"compile scope must be 'regional' or 'full', got {scope!r}")
    if mode is not None and mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    mode = None if mode == 'default' else mode
    # torch.compile takes a mode or inductor options, not both: the options include the mode's
    how = dict(options=compile_options(mode, recompute, gemm_autotune)) if backend == 'inductor' else dict(mode=mode)
    blocks = [m for m in model.modules() if isinstance(m, REPEATED_BLOCKS)]
    if scope == 'full' or not blocks:
        return torch.compile(model, backend=backend, **how)
    # Each distinct block (downsampling or not, squeeze-excite or not, width), train/eval and batch size is one
    # more entry for the same forward code: raise dynamo's limit of 8. Static shapes (dynamic=False): otherwise
    # the second block width turns on symbolic shapes (slower kernels; inductor failed on them on a CPU).
    config = torch._dynamo.config
    limit = 'recompile_limit' if hasattr(config, 'recompile_limit') else 'cache_size_limit'  # older name
    setattr(config, limit, max(getattr(config, limit), 64))
    # A compiled block would keep its own mask of its final ReLU for backward; the next block keeps that ReLU's
    # output anyway, so it applies the mask (same gradients, less memory).
    chain_block_relus(model)
    stem = getattr(getattr(model, 'body', None), 'conv1', None)
    head = getattr(model, 'head', None)
    for region in blocks + [m for m in (stem, head) if m is not None]:
        region.compile(backend=backend, dynamic=False, **how)
    return model


def compiled_graph_count():
    """Graphs torch.compile has built in this process so far. A whole-model compile should add exactly one: more
    means graph breaks (benchmarks/graph_breaks.py says where), and breaks cost most of the compiled speed."""
    return counters['stats']['unique_graphs']
