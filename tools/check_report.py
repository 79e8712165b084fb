"""Check a `validate.py --report` folder against an independent computation from its `--save-scores` file.

    python validate.py --model-path best.pth --data DIR --save-scores scores.csv --report report/
    python tools/check_report.py --data DIR --scores scores.csv --report report/

Prints the largest difference between per_class.csv's AP and scikit-learn's average precision (unknown entries
left out class by class), summary.json's mAP against that mean, and the CF1 of thresholds.json against the CF1 of
the best single global threshold on the same data.
"""
import argparse
import csv
import json
import os
import sys

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src_files.data.formats import load_datasets  # noqa: E402
from src_files.helper_functions.metrics import threshold_metrics  # noqa: E402


def read_scores(path, data, data_format):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    val = load_datasets(data, data_format, need_train=False).val
    target_of = {image_id: val.target(i).numpy() for i, image_id in enumerate(val.image_ids)}
    scores = np.array([row[1:] for row in rows[1:]], dtype=np.float64)
    return rows[0][1:], scores, np.stack([target_of[row[0]] for row in rows[1:]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', required=True)
    parser.add_argument('--data-format', default='auto')
    parser.add_argument('--scores', required=True)
    parser.add_argument('--report', required=True)
    args = parser.parse_args()
    names, scores, targets = read_scores(args.scores, args.data, args.data_format)
    aps = []
    for c in range(targets.shape[1]):
        known = targets[:, c] >= 0
        positives = targets[known, c] == 1
        aps.append(100 * average_precision_score(positives, scores[known, c]) if positives.any() else 0.0)
    with open(os.path.join(args.report, 'per_class.csv'), newline='') as f:
        reported = {row['class']: float(row['AP']) for row in csv.DictReader(f)}
    summary = json.load(open(os.path.join(args.report, 'summary.json')))
    thresholds = json.load(open(os.path.join(args.report, 'thresholds.json')))
    print(f"per-class AP: largest |report - sklearn| {max(abs(reported[n] - a) for n, a in zip(names, aps)):.2e}")
    print(f"mAP: summary.json {summary['mAP']:.4f}, sklearn mean {np.mean(aps):.4f}")
    per_class = threshold_metrics(targets, scores, np.array([thresholds.get(n, 0.75) for n in names]))['CF1']
    best_global = max((threshold_metrics(targets, scores, t)['CF1'], t) for t in np.unique(scores))
    print(f"CF1: per-class thresholds {per_class:.2f}, best global threshold {best_global[0]:.2f} "
          f"(at {best_global[1]:.4g})")


if __name__ == '__main__':
    main()
