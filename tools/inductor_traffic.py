"""The bytes inductor's generated GPU kernels move in a training step or an inference batch, counted on a machine
without a GPU.

    python tools/inductor_traffic.py --model-name tresnet_l --image-size 448 --batch-size 56
    python tools/inductor_traffic.py ... --stock          # inductor's own store-vs-recompute thresholds
    python tools/inductor_traffic.py ... --code-dir DIR   # also keep the generated code of every block
    python tools/inductor_traffic.py --inference --batch-size 64 [--gemm-autotune]

Every distinct residual block, as `--compile-scope regional` compiles it (bf16 autocast, channels-last, the
memory-saving backward unless --no-lowmem, ReLU masks handed on; with --inference: folded norms, fp16, no
gradients), is traced and partitioned by torch.compile on CPU fake tensors; its graphs are then moved to a
pretended H100 and lowered by inductor to Triton code, which is read, not run. For each Triton kernel launch the
count takes every buffer it reads or writes whole, once per loop of the kernel that reads it and once per loop
that writes it (a pooling window's loads in one loop are one pass; a reduction's two loops are two; a matrix
product template's operands once each). The library kernels (cuDNN convolutions, cuBLAS matrix products) are
counted apart, each operand once in 2-byte elements (a convolution's backward reads its output gradient twice
and its input once, and writes the input gradient); benchmarks/bench_traffic.py's floor leaves them out. The stem
and the head are left out (under 1%).

--gemm-autotune compiles with compile.py's GEMM_AUTOTUNE_OPTIONS, under which inductor chooses each matrix
product by timing it on the device. Without a device the count takes the Triton template every time, with the
following pointwise work fused into it: what the generated code moves if the templates win on the device. It
also prints how many matrix-product shapes and candidate kernels the device would compile and time at the first
call (a whole-model compile tunes each shape once), which is what this option adds to the compile time.

A development tool, kept out of benchmarks/ because it measures nothing on a device and patches PyTorch internals:
torch.cuda's device queries and inductor's code loading (checked with PyTorch 2.14), so a newer PyTorch may need
it adjusted. Its counts are in BENCHMARKS.md.
"""
import argparse
import ast
import collections
import contextlib
import math
import os
import re
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src_files.models import create_model, fold_norm_layers  # noqa: E402
from src_files.models.compile import compile_options  # noqa: E402
from src_files.models.tresnet import BasicBlock, Bottleneck, chain_block_relus, set_memory_efficient  # noqa: E402

BYTES = {'bf16': 2, 'fp16': 2, 'fp32': 4, 'fp64': 8, 'i1': 1, 'i8': 1, 'u8': 1, 'i32': 4, 'i64': 8}
H100 = collections.namedtuple('Props', 'name major minor multi_processor_count total_memory warp_size '
                              'max_threads_per_multi_processor regs_per_multiprocessor '
                              'shared_memory_per_block_optin L2_cache_size gcnArchName')(
    'NVIDIA H100 80GB HBM3', 9, 0, 132, 80 * 2 ** 30, 32, 2048, 65536, 232448, 50 * 2 ** 20, '')


class _NoDevice:
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _cudnn_memory_format(input_, weight, backend):
    """The output layout cuDNN gives a convolution on a GPU: channels-last in, channels-last out."""
    def channels_last(t):
        return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return torch.channels_last if channels_last(input_) or channels_last(weight) else torch.contiguous_format


@contextlib.contextmanager
def pretend_h100(sources):
    """Device queries answer as an H100; inductor's compiled graphs are read into `sources`, not loaded (the other
    modules it writes, such as a template's kernel, are loaded as usual: they define kernels, and run none)."""
    import torch._dynamo.device_interface as device_interface
    import torch.utils._triton
    from torch._inductor import codecache
    load = codecache.PyCodeCache.load_by_key_path

    def read_instead_of_loading(key, path, *args, **kwargs):
        with open(path) as f:
            source = f.read()
        if 'def call(' not in source:
            return load(key, path, *args, **kwargs)
        sources.append(source)
        module = types.ModuleType('not_loaded')
        module.call, module.runner, module.__file__ = (lambda *a, **k: None), None, path
        return module

    cuda, interface = device_interface.CudaInterface, torch.utils._triton
    patches = [
        (torch.cuda, 'device_count', lambda: 1), (torch.cuda, 'current_device', lambda: 0),
        (torch.cuda, 'get_device_properties', lambda *a, **k: H100),
        (torch.cuda, 'get_device_capability', lambda *a, **k: (9, 0)),
        (torch.cuda, 'get_device_name', lambda *a, **k: H100.name),
        (torch.cuda, 'is_bf16_supported', lambda *a, **k: True),
        (torch.cuda, 'get_rng_state', lambda *a, **k: torch.zeros(16, dtype=torch.uint8)),
        (torch.cuda, 'set_rng_state', lambda *a, **k: None), (torch.cuda, '_lazy_init', lambda: None),
        (torch.cuda, 'is_current_stream_capturing', lambda: False), (torch.cuda, 'is_initialized', lambda: True),
        (torch.cuda, 'synchronize', lambda *a, **k: None), (torch.cuda, 'set_device', lambda *a, **k: None),
        (torch.cuda, 'device', _NoDevice), (torch.cuda.graphs, 'is_current_stream_capturing', lambda: False),
        (cuda, 'get_device_properties', staticmethod(lambda *a, **k: H100)),
        (cuda.Worker, 'get_device_properties', staticmethod(lambda *a, **k: H100)),
        (cuda, 'get_compute_capability', staticmethod(lambda *a, **k: 90)),
        (cuda, 'is_available', staticmethod(lambda: True)), (cuda, 'current_device', staticmethod(lambda: 0)),
        (cuda.Worker, 'current_device', staticmethod(lambda: 0)),
        (cuda, 'is_bf16_supported', staticmethod(lambda *a, **k: True)), (cuda, 'device', _NoDevice),
        (interface, 'triton_hash_with_backend', lambda: 'no-gpu'),
        (torch._C, '_conv_determine_backend_memory_format', _cudnn_memory_format),
        (codecache.PyCodeCache, 'load_by_key_path', staticmethod(read_instead_of_loading)),
    ]
    saved = [(owner, name, owner.__dict__.get(name, getattr(owner, name))) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def _on_cuda(value):
    if isinstance(value, torch.device) and value.type == 'cpu':
        return torch.device('cuda', 0)
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cuda(v) for v in value)
    return 'cuda' if value == 'cpu' else value


# operands' (sizes, strides, dtype) and output layout of each autotuned choice in this process -> (candidate
# kernels, of them Triton templates). On a device inductor tunes each such key once and caches the timings.
AUTOTUNED = {}


def _templates_win(self, choices, input_nodes, layout, *args, **kwargs):
    """Stands in for inductor's autotuning benchmark, which needs the device: every Triton template times faster
    than every library kernel. Records what the device would compile and time (AUTOTUNED)."""
    from torch._inductor.select_algorithm import TritonTemplateCaller
    templates = [isinstance(c, TritonTemplateCaller) for c in choices]
    key = tuple((tuple(n.get_size()), tuple(n.get_stride()), n.get_dtype()) for n in input_nodes) + (str(layout),)
    AUTOTUNED[key] = len(choices), sum(templates)
    return {c: 1.0 if template else 2.0 for c, template in zip(choices, templates)}


def generated_code(block, x, options):
    """Inductor's code for `block` on `x`, lowered for an H100: [forward, backward] for one training step if x
    requires gradients, else [forward] of an inference batch (no gradients)."""
    from torch._functorch import config as functorch_config
    from torch._guards import detect_fake_mode
    from torch._inductor import config as inductor_config
    from torch._inductor import select_algorithm
    from torch._inductor.compile_fx import compile_fx, compile_fx_inner
    from torch._inductor.select_algorithm import AlgorithmSelectorCache
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp
    sources = []

    def lower_on_cuda(gm, example_inputs, **kwargs):
        # traced and partitioned on CPU fakes (autograd cannot trace a fake CUDA backward without a GPU); each
        # partition is moved to CUDA here
        mode = detect_fake_mode(example_inputs)
        with mode:
            inputs = [torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device='cuda')
                      if isinstance(t, torch.Tensor) and t.device.type == 'cpu' and t.dim() > 0 else t
                      for t in example_inputs]
        for node in gm.graph.nodes:
            node.args = _on_cuda(node.args)
            node.kwargs = {k: _on_cuda(v) for k, v in node.kwargs.items()}
        gm.recompile()
        FakeTensorProp(gm, mode).propagate_dont_convert_inputs(*inputs)
        torch.cuda.is_available = lambda: True  # only while lowering: dynamo would look for CUDA streams
        try:
            return compile_fx_inner(gm, inputs, **kwargs)
        finally:
            torch.cuda.is_available = lambda: False

    def step(x):
        if not x.requires_grad:  # inference: the block's own (half-precision) weights
            with torch.no_grad():
                return block(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):  # the CPU trace of CUDA autocast's bf16 convolutions
            return block(x)

    available, benchmark, printing = torch.cuda.is_available, AlgorithmSelectorCache.benchmark, \
        select_algorithm.PRINT_AUTOTUNE
    torch._dynamo.reset()
    options = {k: v for k, v in options.items() if k != 'triton.cudagraphs'}
    if options.get('max_autotune_gemm') or options.get('max_autotune'):
        # no device to time the choices on, nor the fused epilogues: the templates win, epilogues fused; these
        # made-up timings must not reach the on-disk autotuning cache, where a GPU run would find them, nor the output
        options.update(benchmark_epilogue_fusion=False, autotune_local_cache=False,
                       max_autotune_report_choices_stats=False)
        AlgorithmSelectorCache.benchmark = _templates_win
        select_algorithm.PRINT_AUTOTUNE = False
    with pretend_h100(sources), inductor_config.patch({**options, 'fx_graph_cache': False}), \
            functorch_config.patch(force_non_lazy_backward_lowering=True):
        try:
            torch.compile(step, backend=lambda gm, inputs: compile_fx(gm, inputs, inner_compile=lower_on_cuda),
                          dynamic=False)(x)
        finally:
            torch.cuda.is_available, AlgorithmSelectorCache.benchmark = available, benchmark
            select_algorithm.PRINT_AUTOTUNE = printing
            torch._dynamo.reset()
    return sources


def _shapes(call):
    """Buffer name -> number of elements, from the call() of an inductor module."""
    numel = {}
    for line in call.splitlines():
        line = line.strip()
        if line.startswith('assert_size_stride_grouped('):
            node = ast.parse(line).body[0].value
            for name, shape in zip((e.id for e in node.args[0].elts), ast.literal_eval(node.args[1])):
                numel[name] = math.prod(shape)
    patterns = (r"assert_(?:size_stride|tensor_metadata)\((\w+), \(([^)]*)\)",
                r"(\w+) = empty_strided_cuda\(\(([^)]*)\)", r"(\w+) = reinterpret_tensor\(\w+, \(([^)]*)\)")
    for pattern in patterns:
        for m in re.finditer(pattern, call):
            numel[m.group(1)] = math.prod(int(d) for d in m.group(2).split(',') if d.strip())
    for m in re.finditer(r"(\w+) = (\w+); del \2  # reuse", call):
        if m.group(2) in numel:
            numel[m.group(1)] = numel[m.group(2)]
    return numel


def _passes(body, pointer):
    """How many times a kernel goes over `pointer`'s buffer: once per loop that loads it and once per loop that
    stores it, so that a reduction's two passes count twice and a pooling window's several loads in one pass once."""
    loops = re.split(r"^\s*for \w+ in ", body, flags=re.M)
    return sum(bool(re.search(rf"tl\.{access}\({pointer}\b", loop)) for loop in loops for access in ('load', 'store'))


def kernel_bytes(source):
    """[(kernel name, bytes)] for every Triton launch in an inductor module: each pointer argument's buffer,
    whole, times the passes the kernel makes over it (dtype from the kernel's signature; a template's operands
    once each)."""
    kernels = {}
    for m in re.finditer(r"^(triton_\w+) = async_compile\.triton\('\w+', '''(.*?)'''", source, re.S | re.M):
        body = m.group(2)
        signature = re.search(r"'signature': \{(.*?)\}", body).group(1)
        pointers = [(p, t.lstrip('*')) for p, t in re.findall(r"'(\w+)': '(\*?\w+)'", signature) if t.startswith('*')]
        template = m.group(1).startswith('triton_tem_')
        kernels[m.group(1)] = [(BYTES[t], 1 if template else _passes(body, p)) for p, t in pointers]
    call = source[source.index('def call('):]
    numel = _shapes(call)
    launches = []
    for m in re.finditer(r"(triton_\w+)\.run\(([^)]*)\)", call):
        args = [a.strip() for a in m.group(2).split(',')]
        moved = sum(numel.get(arg, 0) * size * accesses for (size, accesses), arg in zip(kernels[m.group(1)], args))
        launches.append((m.group(1), moved))
    return launches


def _top_level_args(text, open_paren):
    """The comma-separated arguments of the call whose '(' is at text[open_paren]."""
    args, depth, start = [], 0, open_paren + 1
    for i in range(open_paren, len(text)):
        depth += {'(': 1, ')': -1}.get(text[i], 0)
        if depth == 1 and text[i] == ',':
            args.append(text[start:i].strip())
            start = i + 1
        elif depth == 0:
            return args + [text[start:i].strip()]
    raise ValueError('unbalanced call')


def library_bytes(source):
    """[(kernel, bytes)] for every cuDNN / cuBLAS call in an inductor module: each operand and the output once, in
    2-byte elements; a convolution's backward reads the output gradient twice (input and weight gradients) and
    the input once, and writes the input gradient."""
    call = source[source.index('def call('):]
    numel = _shapes(call)

    def size(arg):
        view = re.match(r"reinterpret_tensor\(\w+, \(([^)]*)\)", arg)
        return math.prod(int(d) for d in view.group(1).split(',') if d.strip()) if view else numel.get(arg, 0)
    launches = []
    for line in call.splitlines():
        m = re.match(r"\s*(?:(\w+) = )?(extern_kernels\.\w+|torch\.ops\.aten\.convolution_backward\.default)\(", line)
        if not m:
            continue
        args = _top_level_args(line, m.end() - 1)
        operands = [a for a in args if not re.match(r"\w+=", a)]
        if m.group(2).startswith('torch.ops.aten.convolution_backward'):
            kernel, elements = 'convolution_backward', 2 * size(operands[0]) + 2 * size(operands[1])
        else:
            out = [a.split('=', 1)[1] for a in args if a.startswith('out=')]
            kernel, elements = m.group(2).split('.', 1)[1], sum(map(size, operands)) + size(m.group(1) or out[0])
        launches.append((kernel, 2 * elements))
    return launches


def distinct_blocks(model, image_size):
    """[(name, block, input shape, copies)] per distinct block, as the regional compile groups them."""
    shapes = {}
    blocks = {name: m for name, m in model.named_modules() if isinstance(m, (BasicBlock, Bottleneck))}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: shapes.setdefault(name, tuple(inp[0].shape))
                                     and None) for name, m in blocks.items()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, image_size, image_size))
    model.train()
    for h in hooks:
        h.remove()
    groups = collections.OrderedDict()
    for name, m in blocks.items():  # stage, first of its stage, ReLU-mask hand-over in and out
        key = (name.split('.')[-2], name.endswith('.0'), type(m), type(m.relu))
        groups.setdefault(key, []).append(name)
    return [(names[0], blocks[names[0]], shapes[names[0]], len(names)) for names in groups.values()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-name', default='tresnet_l', help='default: %(default)s')
    parser.add_argument('--image-size', type=int, default=448, help='default: %(default)s')
    parser.add_argument('--batch-size', type=int, default=56, help='default: %(default)s')
    parser.add_argument('--inference', action='store_true',
                        help='an inference batch (folded norms, fp16, no gradients) instead of a training step')
    parser.add_argument('--lowmem', action=argparse.BooleanOptionalAction, default=True,
                        help='training: the memory-saving backward (--lowmem); default: %(default)s')
    parser.add_argument('--stock', action='store_true',
                        help="inductor's own store-vs-recompute thresholds, not compile.py's RECOMPUTE_OPTIONS")
    parser.add_argument('--gemm-autotune', action='store_true',
                        help="compile.py's GEMM_AUTOTUNE_OPTIONS, the Triton templates taken (see above)")
    parser.add_argument('--blocks', type=int, default=0, help='only the first N distinct blocks (0: all)')
    parser.add_argument('--code-dir', default='', help='write the generated code of every block here')
    args = parser.parse_args()
    training = not args.inference
    torch.manual_seed(0)
    model = create_model(model_name=args.model_name, num_classes=80, image_size=args.image_size)
    model = set_memory_efficient(model, args.lowmem and training).to(memory_format=torch.channels_last)
    if training:
        chain_block_relus(model)
    blocks = distinct_blocks(model, args.image_size)
    if not training:
        fold_norm_layers(model).half()  # in place: the blocks above are folded too
    options = compile_options(None, recompute=not args.stock, gemm_autotune=args.gemm_autotune)
    what = 'training step' if training else 'inference batch'
    print(f"# {args.model_name} {args.image_size}px, batch {args.batch_size}, {what}, "
          + ("bf16, " + 'lowmem, ' * args.lowmem if training else 'folded norms, fp16, ')
          + f"inductor options {options or 'stock'}, torch {torch.__version__}")
    print(f"| {'block':22} | {'input':18} | {'copies':>6} | {'launches':>8} | {'GB forward':>10} | "
          f"{'GB backward':>11} | {'GB all copies':>13} | {'library GB all copies':>21} |")
    print(f"|{'-' * 24}|{'-' * 20}|{'-' * 8}|{'-' * 10}|{'-' * 12}|{'-' * 13}|{'-' * 15}|{'-' * 23}|")
    total = library_total = 0.0
    for i, (name, block, shape, copies) in enumerate(blocks):
        if args.blocks and i >= args.blocks:
            break
        x = torch.randn(args.batch_size, *shape[1:]).to(torch.bfloat16 if training else torch.float16)
        sources = generated_code(block.train(training), x.to(memory_format=torch.channels_last).requires_grad_(
            training), options)
        parts = ('forward', 'backward') if training else ('forward',)
        if len(sources) != len(parts):
            raise SystemExit(f'{name}: expected {len(parts)} modules from inductor ({", ".join(parts)}), '
                             f'got {len(sources)}')
        if args.code_dir:
            os.makedirs(args.code_dir, exist_ok=True)
            for part, source in zip(parts, sources):
                with open(os.path.join(args.code_dir, f'{name}.{part}.py'), 'w') as f:
                    f.write(source)
        launches = [kernel_bytes(source) for source in sources]
        forward, backward = [sum(b for _, b in part) / 1e9 for part in launches] + [0.0] * (not training)
        library = sum(b for source in sources for _, b in library_bytes(source)) / 1e9
        total += (forward + backward) * copies
        library_total += library * copies
        print(f"| {name:22} | {'x'.join(map(str, shape[1:])):18} | {copies:6d} | "
              f"{sum(map(len, launches)):8d} | {forward:10.3f} | {backward:11.3f} | "
              f"{(forward + backward) * copies:13.3f} | {library * copies:21.3f} |", flush=True)
    print(f"# blocks: {total:.5g} GB per {what} in Triton kernels; {library_total:.5g} GB in library kernels (cuDNN, "
          f"cuBLAS); {total + library_total:.5g} GB in all")
    if args.gemm_autotune:  # each distinct shape is tuned once per process, as in a whole-model compile
        print(f"# autotuned matrix products: {len(AUTOTUNED)} distinct shapes, "
              f"{sum(n for n, _ in AUTOTUNED.values())} candidate kernels "
              f"({sum(t for _, t in AUTOTUNED.values())} Triton templates) that the device compiles and times")


if __name__ == '__main__':
    main()
