"""The least memory traffic of the memory-bound work in a training step and in inference, and its time at a
given bandwidth: the floor under the Triton kernels of a GPU profile (norm, activation, residual, squeeze-excite).

    python benchmarks/bench_traffic.py --model-name tresnet_l --image-size 448 --batch-size 56 --infer-batch-size 64

Counted from the model's tensor sizes (forward hooks, on the CPU), in 2-byte elements (bf16/fp16), with the
passes over each tensor that no fusion avoids while the convolutions stay in cuDNN (a floor; kernels may move more):
- norm + activation, training: forward reads the convolution's output twice (statistics, then normalize) and
  writes its output (3); backward reads the output gradient and the kept output twice (gradient statistics,
  then the input gradient) and writes the input gradient (5).
- residual add + ReLU (block output): forward reads the shortcut (1); backward reads the shortcut's gradient
  once more in each of the two backward passes of the norm it joins (2).
- squeeze-excite product: forward reads and writes for the product (2; its mean can be taken while its input is
  written); backward reads the gradient and the input for the gate's gradient, then writes the input's gradient
  (3), and the memory-saving backward recomputes the product (read, write: 2).
- inference (norms folded into the convolutions): the activation reads and writes each convolution output (2),
  the residual add reads the shortcut (1), the squeeze-excite product as in training's forward (2).
The convolutions' own reads and writes are left out: they are in the cuDNN kernels' times.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src_files.models import create_model  # noqa: E402
from src_files.models.tresnet import BasicBlock, Bottleneck  # noqa: E402
from src_files.models.tresnet.layers import NormAct2d, SEModule  # noqa: E402

PASSES = {  # tensor kind -> (training passes, inference passes)
    'norm': (3 + 5, 2),
    'block': (1 + 2, 1),
    'se': (2 + 3 + 2, 2),
}


@torch.no_grad()
def count_elements(model, x):
    """{'norm': elements of every norm output, 'block': of every residual block output, 'se': of every squeeze-
    excite product} for one forward of `model` (eval mode, so that every squeeze-excite runs as a module)."""
    kinds = {NormAct2d: 'norm', BasicBlock: 'block', Bottleneck: 'block', SEModule: 'se'}
    counts = dict.fromkeys(PASSES, 0)

    def hook(kind):
        def add(module, inputs, output):
            counts[kind] += output.numel()
        return add

    handles = [m.register_forward_hook(hook(kinds[type(m)])) for m in model.modules() if type(m) in kinds]
    was_training = model.training
    try:
        model.eval()(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return counts


def least_bytes(counts_per_image, batch_size, training, bytes_per_element=2):
    column = 0 if training else 1
    return sum(PASSES[k][column] * n for k, n in counts_per_image.items()) * batch_size * bytes_per_element


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-name', default='tresnet_l', help='default: %(default)s')
    parser.add_argument('--image-size', type=int, default=448, help='default: %(default)s')
    parser.add_argument('--batch-size', type=int, default=56, help='training batch; default: %(default)s')
    parser.add_argument('--infer-batch-size', type=int, default=64, help='default: %(default)s')
    parser.add_argument('--bandwidth', type=float, default=3.35,
                        help='memory bandwidth in TB/s (H100 SXM HBM3: 3.35); default: %(default)s')
    args = parser.parse_args()
    model = create_model(model_name=args.model_name, num_classes=80, image_size=args.image_size)
    counts = count_elements(model, torch.zeros(1, 3, args.image_size, args.image_size))
    print(f"# {args.model_name} {args.image_size}px, elements per image: "
          + ', '.join(f'{k} {n / 1e6:.1f} M' for k, n in counts.items()))
    print(f"| {'step':26} | {'batch':>5} | {'least GB':>8} | {f'ms at {args.bandwidth} TB/s':>15} |")
    print(f"|{'-' * 28}|{'-' * 7}|{'-' * 10}|{'-' * 17}|")
    for name, batch, training in (('training (fwd + bwd)', args.batch_size, True),
                                  ('inference (folded norms)', args.infer_batch_size, False)):
        gb = least_bytes(counts, batch, training) / 1e9
        print(f'| {name:26} | {batch:5d} | {gb:8.1f} | {gb / args.bandwidth:15.1f} |')


if __name__ == '__main__':
    main()
