"""Zero-shot queries from class names, on the demo's zero-shot data (unseen colour-shape pairs): the same head
trained with its queries from a word-vector text file and from the equivalent matrix file, and with query
augmentation (--query-noise, --query-drop) against without, over seeds.

    python benchmarks/zsl_queries.py --seeds 0-2 --out runs/zsl_queries
    python benchmarks/zsl_queries.py --seeds 0 --configs words matrix --epochs 2     # quick

Each run: `train_zsl_nus.py --demo --text-encoder ... --seed S` (the demo recipe: TResNet-M 64 px from scratch, 6
epochs), then `validate.py --demo` on its best.pth, which rebuilds the unseen classes' queries from their names
through the encoder the checkpoint records (the names are the only thing given about them). Reported: ZSL mAP
(the 4 unseen classes) and GZSL mAP, and the chance level of ZSL mAP (random scores, averaged over 100 draws).
Each finished run appends a JSON line to OUT/results.jsonl; a run already there is not repeated.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.seed_study import parse_seeds, read_results  # noqa: E402
from src_files.data import demo_nus_root, load_nus_wide_zsl  # noqa: E402
from src_files.data.demo import CLASS_NAMES, demo_word_vectors, write_word_vector_file  # noqa: E402
from src_files.helper_functions.metrics import mAP  # noqa: E402
from src_files.models.text_encoder import encode_names, parse_text_encoder  # noqa: E402

CONFIGS = {'words': [], 'matrix': [], 'noise': ['--query-noise', '0.2'], 'drop': ['--query-drop', '0.25'],
           'noise+drop': ['--query-noise', '0.2', '--query-drop', '0.25']}


def encoder_files(out):
    """(the demo's word-vector file, the matrix file of its class names' vectors, the matrix's class list)."""
    words = write_word_vector_file(os.path.join(out, 'demo_words.vec'), demo_word_vectors())
    names = sorted(CLASS_NAMES)  # (the demo's seen and unseen classes)
    matrix = encode_names(names, parse_text_encoder(words)).numpy()  # (each name: the mean of its words' vectors)
    np.save(os.path.join(out, 'demo_classes.npy'), matrix)
    with open(os.path.join(out, 'demo_classes.txt'), 'w') as f:
        f.write(''.join(n + '\n' for n in names))
    return words, os.path.join(out, 'demo_classes.npy'), os.path.join(out, 'demo_classes.txt')


def chance_zsl_map(draws=100):
    """Mean ZSL mAP of random scores on the demo's unseen classes."""
    val = load_nus_wide_zsl(demo_nus_root(), None, None).zsl_val_set
    targets = np.stack([val.target(i).numpy() for i in range(len(val))])
    rng = np.random.default_rng(0)
    return float(np.mean([mAP(targets, rng.random(targets.shape)) for _ in range(draws)]))


def run(config, seed, files, args):
    words, matrix, names = files
    encoder = ['--text-encoder', matrix, '--text-names', names] if config == 'matrix' else ['--text-encoder', words]
    folder = os.path.join(args.out, f'{config}_seed{seed}')
    if os.path.isdir(folder):
        subprocess.run(['rm', '-rf', folder], check=True)
    train = [sys.executable, os.path.join(ROOT, 'train_zsl_nus.py'), '--demo', '--seed', str(seed), '--output-dir',
             folder, '--epochs', str(args.epochs)] + encoder + CONFIGS[config]
    subprocess.run(train, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    metrics = os.path.join(folder, 'validate.json')
    subprocess.run([sys.executable, os.path.join(ROOT, 'validate.py'), '--demo', '--model-path',
                    os.path.join(folder, 'best.pth'), '--json', metrics], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    with open(metrics) as f:
        result = json.load(f)
    return {'config': config, 'seed': seed, 'epochs': args.epochs, 'zsl_mAP': result['zsl']['mAP'],
            'gzsl_mAP': result['gzsl']['mAP']}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', default='0-2')
    parser.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'zsl_queries'))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    files = encoder_files(args.out)
    results_file = os.path.join(args.out, 'results.jsonl')
    done = read_results(results_file)
    for seed in parse_seeds(args.seeds):
        for config in args.configs:
            if any(r['config'] == config and r['seed'] == seed and r['epochs'] == args.epochs for r in done):
                continue
            result = run(config, seed, files, args)
            print(json.dumps(result), flush=True)
            with open(results_file, 'a') as f:
                f.write(json.dumps(result) + '\n')
            done.append(result)
    print(f"chance ZSL mAP (random scores): {chance_zsl_map():.2f}")
    print(f"{'config':12s} {'runs':>4s} {'ZSL mAP mean':>12s} {'sd':>5s} {'min':>6s} {'max':>6s} {'GZSL mAP':>9s}")
    for config in args.configs:
        rows = [r for r in done if r['config'] == config and r['epochs'] == args.epochs]
        if rows:
            z = np.array([r['zsl_mAP'] for r in rows])
            g = np.mean([r['gzsl_mAP'] for r in rows])
            print(f"{config:12s} {len(rows):4d} {z.mean():12.2f} {z.std(ddof=1) if len(z) > 1 else 0:5.2f} "
                  f"{z.min():6.2f} {z.max():6.2f} {g:9.2f}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
