"""Export parity at the model-zoo shapes: ONNX (ONNX Runtime) and .pt2 files of randomly initialised models
against the PyTorch model, at batch 1 and 2 from one file.

    python tools/check_export_shapes.py                     # every case below (several minutes on 2 CPU cores)
    python tools/check_export_shapes.py --cases m224 l448_9605

The PyTorch model gives the published logits (tests/test_reference_logits.py); the measure is export.py's: max
|exported - PyTorch| / max |PyTorch logit| over the batch, to be under 1e-4.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src_files.export import build_metadata, check_parity, load_onnx, load_pt2, random_batches, write_export  # noqa
from src_files.export.parity import TOLERANCE  # noqa: E402
from src_files.models import create_model, fold_norm_layers  # noqa: E402

# name: (model, image size, classes, query groups, zero-shot)
CASES = {'m224': ('tresnet_m', 224, 80, -1, 0), 'l448': ('tresnet_l', 448, 80, -1, 0),
         'xl640': ('tresnet_xl', 640, 80, -1, 0), 'l448_9605': ('tresnet_l', 448, 9605, 200, 0),
         'm224_zsl': ('tresnet_m', 224, 925, -1, 1)}


def model_of(name, size, classes, groups, zsl):
    torch.manual_seed(0)
    model = create_model(model_name=name, image_size=size, num_classes=classes, num_of_groups=groups, zsl=zsl)
    if zsl:  # the word vectors of the classes to score are baked in, as export.py --wordvecs does
        from src_files.ml_decoder.ml_decoder import update_wordvecs
        update_wordvecs(model, test_wordvecs=torch.randn(300, 81, generator=torch.Generator().manual_seed(1)))
        classes = 81
    return fold_norm_layers(model.eval()), classes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=list(CASES))
    parser.add_argument('--formats', nargs='+', default=['onnx', 'pt2'], choices=['onnx', 'pt2'])
    args = parser.parse_args()
    print('| case | format | batch 1 | batch 2 | seconds |')
    print('|---|---|---|---|---|')
    failed = False
    for case in args.cases:
        name, size, classes, groups, zsl = CASES[case]
        model, classes = model_of(name, size, classes, groups, zsl)
        meta = build_metadata(name, size, [str(i) for i in range(classes)], zsl=bool(zsl))
        for fmt in args.formats:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.time()
                path = os.path.join(tmp, f'model.{fmt}')
                write_export(model, path, fmt, size, meta)
                runner = (load_onnx if fmt == 'onnx' else load_pt2)(path)[0]
                results = check_parity(model, runner, random_batches(size))
            rel = [r[2] for r in results]
            failed |= max(rel) > TOLERANCE
            print(f"| {case} ({name} {size}px, {classes} classes, groups {groups}{', zero-shot' if zsl else ''}) | "
                  f"{fmt} | {rel[0]:.1e} | {rel[1]:.1e} | {time.time() - start:.0f} |", flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
