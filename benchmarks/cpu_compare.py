"""bench_infer.py --device cpu (without --modes): the CPU inference paths of cpu_paths.py in one run.

For each path: the seconds to prepare it (export, quantization), images/s at each --batch-sizes (the same random
batch for every path), the largest logit difference to the published path relative to its largest logit, and
with --model-path and --data the mAP (top-1 on single-label data) of the path on the validation set and its
difference to fp32 (the exact path). Without --model-path the model has random weights.
"""
import platform

import numpy as np
import torch

from cpu_paths import PATHS, build, temporary_folder, time_path


def add_args(parser):
    g = parser.add_argument_group('CPU paths (--device cpu without --modes)')
    g.add_argument('--paths', default=','.join(PATHS), help=f"CPU paths to compare ({', '.join(PATHS)})")
    g.add_argument('--batch-sizes', default='1,16', help='batch sizes to time each path at')
    g.add_argument('--min-seconds', type=float, default=8.0, help='time each path and batch size at least this long')
    g.add_argument('--model-path', default='', help='a trained checkpoint (its settings are read from it)')
    g.add_argument('--data', default='', help='with --model-path: score each path on this validation set')


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def load_trained(args):
    """(model, the Loaded checkpoint: src_files/inference/load.py) of --model-path, read as validate.py reads it
    (fp32, norms folded)."""
    import validate
    from src_files.cli import flags, resolve
    from src_files.inference.load import load_model
    argv = ['--model-path', args.model_path, '--precision', 'fp32', '--device', 'cpu']
    values, explicit = flags.parse(validate.build_parser(), argv)
    loaded = load_model(resolve.inference_settings(values, explicit), torch.device('cpu'))
    model = loaded.model
    model.num_classes = len(loaded.class_names)
    return model, loaded


def validation_images(data, image_size):
    """(images [N, 3, S, S], targets, task) of the validation split of `data`, read once for every path."""
    from src_files.data.formats import load_datasets
    from src_files.helper_functions.augmentations import val_transform
    splits = load_datasets(data, 'auto', None, val_transform(image_size), need_train=False)
    items = [splits.val[i] for i in range(len(splits.val))]
    targets = np.stack([np.asarray(t) for _, t in items])
    return torch.stack([image for image, _ in items]), targets, splits.task


def score(run, images, targets, task, batch=16):
    from src_files.evaluation.predict import topk_accuracy
    from src_files.helper_functions.metrics import mAP
    logits = torch.cat([run(images[i:i + batch]) for i in range(0, len(images), batch)])
    if task == 'single-label':
        return topk_accuracy(torch.softmax(logits, 1).numpy(), targets)['top1']
    return mAP(targets, torch.sigmoid(logits).numpy())


def main(args):
    torch.manual_seed(0)
    loaded = None
    if args.model_path:
        model, loaded = load_trained(args)
        args.model_name, args.image_size = loaded.config.model_name, loaded.config.image_size
    else:
        from common import build_model, parse_mode
        from src_files.models import fold_norm_layers
        model = fold_norm_layers(build_model(args, torch.device('cpu'), parse_mode('fast')).eval())
        model.num_classes = args.num_classes
    held = validation_images(args.data, args.image_size) if loaded is not None and args.data else None
    sizes = [int(b) for b in args.batch_sizes.split(',')]
    x = {b: torch.rand(b, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(b))
         for b in sizes}
    calibration = held[0][np.linspace(0, len(held[0]) - 1, min(32, len(held[0]))).round().astype(int)] \
        if held is not None else torch.rand(32, 3, args.image_size, args.image_size)
    rows, reference = {}, None
    with temporary_folder() as folder:
        for name in args.paths.split(','):
            run, prep = build(name, model, args.image_size, folder, calibration)
            row = {'prepare_s': prep}
            for b in sizes:
                row[b] = time_path(run, x[b], warmup=args.warmup, min_seconds=args.min_seconds, min_iters=args.iters)
            logits = run(x[sizes[-1]])
            reference = logits if reference is None else reference
            row['diff'] = float((logits - reference).abs().max() / reference.abs().max())
            if held is not None:
                row['score'] = score(run, *held)
            rows[name] = row
            print(f"# {name}: " + ', '.join(f"batch {b} {row[b]:.1f} images/s" for b in sizes)
                  + (f", score {row['score']:.2f}" if 'score' in row else ''), flush=True)
    print_cpu_table(args, rows, sizes, held)


def print_cpu_table(args, rows, sizes, held):
    import onnxruntime
    metric = ('top-1' if held[2] == 'single-label' else 'mAP') if held is not None else None
    print(f"# infer on the CPU: {args.model_name} {args.image_size}px, {cpu_name()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"
          + (f"; {metric} on {len(held[0])} images of {args.data}" if held is not None else ''))
    head = '| path | prepare s | ' + ' | '.join(f'batch {b} images/s | ratio' for b in sizes) + \
        ' | logits vs first path |' + (f' {metric} | vs fp32 |' if held is not None else '')
    print(head)
    print('|' + '---|' * (head.count('|') - 1))
    first = next(iter(rows.values()))
    for name, r in rows.items():
        cells = [f"{r['prepare_s']:.1f}"] + [c for b in sizes for c in (f"{r[b]:.1f}", f"{r[b] / first[b]:.2f}x")]
        cells.append(f"{r['diff']:.1e}")
        if held is not None:
            base = rows.get('fp32', first)['score']
            cells += [f"{r['score']:.2f}", f"{r['score'] - base:+.2f}"]
        print(f"| {name} | " + ' | '.join(cells) + ' |')
