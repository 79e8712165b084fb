"""Activation memory of a training step, on any device: the bytes kept for the backward pass.

    python benchmarks/bench_memory.py --model-name tresnet_l --image-size 448 --batch-size 3 --amp bf16 \\
        --modes published,fast,fast+lowmem,fast+compile,fast+lowmem+compile,fast+lowmem+regional

Eager modes: counted with torch.autograd.graph.saved_tensors_hooks, each storage once. Compiled modes (whole
model, or block by block with +regional, as train.py compiles them): what inductor's partitioner decides to keep
for the backward graphs, counted the same way on a second step ("graphs" counts the compiled graphs: for the
whole model more than one means graph breaks), with inductor's decompositions but no code generation, so it
needs no GPU (about a minute per mode for TResNet-L 448 on 2 CPU cores). Split into activations (tensors with
the batch dimension: they scale with batch x pixels, so a CPU at batch 3 predicts a GPU at batch 56) and the
rest (parameters left out; low-precision weight copies under autocast counted). Use a batch size that no weight
dimension equals (3 works for TResNet).
"""
import argparse
import contextlib

import torch

from common import build_model, compile_config, compile_model_for_speed, parse_mode
from src_files.models.tresnet import to_lowmem


def saved_bytes_eager(model, x, batch_size):
    """-> (activation bytes, other bytes) autograd keeps for backward, parameters left out."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}  # storage address -> [bytes, holds a per-sample tensor]

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            entry = kept.setdefault(storage.data_ptr(), [storage.nbytes(), False])
            entry[1] |= t.dim() > 0 and t.shape[0] == batch_size
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    out.float().sum().backward()
    return (sum(n for n, per_sample in kept.values() if per_sample),
            sum(n for n, per_sample in kept.values() if not per_sample))


def saved_bytes_compiled(model, x, batch_size, mode):
    """-> (activation bytes, other bytes, graphs) that inductor's partitioner keeps for backward.

    Compiled as the mode asks (whole model, or block by block with +regional), with inductor's decompositions and
    partitioner (its joint-graph passes, then the min-cut) but without its code generation: the partitioned
    graphs run as they are, and what they keep is counted on a second step as in eager mode, each storage once.
    Block by block, one compiled graph serves every copy of a block, so only counting each call sees them all.
    Uses PyTorch internals (checked with 2.14)."""
    import torch._dynamo
    try:
        from functorch.compile import make_boxed_func
        from torch._dynamo.backends.common import aot_autograd
        from torch._guards import detect_fake_mode
        from torch._inductor.compile_fx import partition_fn
        from torch._inductor.decomposition import select_decomp_table
        from torch._inductor.virtualized import V
    except ImportError as e:
        raise SystemExit(f'counting compiled modes needs inductor internals this PyTorch lacks ({e}); '
                         f'count eager modes instead') from None
    graphs = [0]  # partitioned so far

    def inductors_partition(joint, joint_inputs, **kwargs):
        graphs[0] += 1
        with V.set_fake_mode(detect_fake_mode(joint_inputs)):  # as inductor's own compile sets it
            return partition_fn(joint, joint_inputs, **kwargs)

    def run_as_is(graph, example_inputs):
        return make_boxed_func(graph.forward)

    backend = aot_autograd(fw_compiler=run_as_is, bw_compiler=run_as_is, partition_fn=inductors_partition,
                           decompositions=select_decomp_table())
    torch._dynamo.reset()
    with compile_config(mode):
        compiled = compile_model_for_speed(model, scope=mode['scope'], backend=backend)
        compiled(x).float().sum().backward()  # compiles
    compiled_graphs = graphs[0]
    activations, other = saved_bytes_eager(compiled, x, batch_size)
    torch._dynamo.reset()
    if graphs[0] != compiled_graphs:
        raise SystemExit(f'the counting step compiled {graphs[0] - compiled_graphs} graphs more: not counted as run')
    return activations, other, compiled_graphs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu', help='default: %(default)s')
    parser.add_argument('--model-name', default='tresnet_l', help='default: %(default)s')
    parser.add_argument('--image-size', type=int, default=448, help='default: %(default)s')
    parser.add_argument('--batch-size', type=int, default=3, help='default: %(default)s')
    parser.add_argument('--num-classes', type=int, default=80, help='default: %(default)s')
    parser.add_argument('--num-of-groups', type=int, default=-1, help='default: %(default)s')
    parser.add_argument('--amp', choices=('off', 'bf16'), default='off',
                        help='autocast dtype (bf16: what the fast path runs on a GPU); default: %(default)s')
    parser.add_argument('--modes', default='published,fast,fast+lowmem',
                        help='modes (see common.py); compiled ones (+compile, +regional, +budget<F>) are counted from '
                             "inductor's partition; default: %(default)s")
    parser.add_argument('--flops', action='store_true',
                        help='also count the floating-point operations of a training step (forward + backward)')
    args = parser.parse_args()
    device = torch.device(args.device)
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size,
                   generator=torch.Generator().manual_seed(0)).to(device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.amp == 'bf16'
                else contextlib.nullcontext())
    print(f"# kept for backward, {args.model_name} {args.image_size}px, batch {args.batch_size}, "
          f"{'bf16 autocast' if args.amp == 'bf16' else 'fp32'}, torch {torch.__version__}")
    print(f"| {'mode':28} | {'activations MiB per image':>25} | {'other MiB':>9} | {'graphs':>6} |")
    print(f"|{'-' * 30}|{'-' * 27}|{'-' * 11}|{'-' * 8}|")
    for name in args.modes.split(','):
        mode = parse_mode(name)
        if mode['compile_mode'] is not None or mode['freeze']:
            raise SystemExit(f'{name}: only eager modes and the default compile (whole or +regional) can be counted')
        model = build_model(args, device, mode).train()
        to_lowmem(model, mode['lowmem'])
        with autocast:
            if mode['compile']:
                activations, other, graphs = saved_bytes_compiled(model, x, args.batch_size, mode)
            else:
                (activations, other), graphs = saved_bytes_eager(model, x, args.batch_size), ''
        print(f'| {name:28} | {activations / 2 ** 20 / args.batch_size:25.1f} | {other / 2 ** 20:9.1f} | '
              f'{graphs:>6} |', flush=True)
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode
        model = build_model(args, device, parse_mode('published')).train()
        with FlopCounterMode(display=False) as counter:
            model(x).float().sum().backward()
        print(f'# training step: {counter.get_total_flops() / args.batch_size / 1e9:.1f} GFLOP per image '
              f'(forward + backward, convolutions and matmuls)')


if __name__ == '__main__':
    main()
