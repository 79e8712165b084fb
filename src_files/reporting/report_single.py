"""validate.py --report DIR on single-label data: where the model errs, class by class.

DIR gets per_class.csv (one row per class in the data's order: images, top-1 and top-5 accuracy of the class's
images, and the class they are most often taken for), summary.json (top-1, top-5, mean per-class accuracy,
counts and provenance) and confusion.png (the confusion matrix, each row normalised to the class's images; for
more than 40 classes, the 40 classes with the most errors).
"""
import csv
import datetime
import io
import json
import os

import numpy as np

FILES = ('per_class.csv', 'summary.json', 'confusion.png')
MAX_SHOWN = 40


def confusion(scores, labels, num_classes):
    """[C, C] counts: row = true class, column = top-1 prediction (ties: the lower class index, as argmax)."""
    predicted = np.asarray(scores).argmax(axis=1)
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), predicted), 1)
    return matrix


def class_table(scores, labels, num_classes, k=5):
    """Per-class arrays [C]: images, top1, topk (percent; NaN for a class without images) and confused_with
    (the most frequent wrong prediction, -1 if none)."""
    scores, labels = np.asarray(scores), np.asarray(labels, np.int64)
    order = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    in_topk = (order == labels[:, None]).any(axis=1)
    matrix = confusion(scores, labels, num_classes)
    images = matrix.sum(axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        top1 = 100.0 * np.diag(matrix) / images
        topk = 100.0 * np.bincount(labels, weights=in_topk, minlength=num_classes) / images
    wrong = matrix.copy()
    np.fill_diagonal(wrong, 0)
    confused = np.where(wrong.max(axis=1) > 0, wrong.argmax(axis=1), -1)
    return {'images': images, 'top1': top1, f'top{k}': topk, 'confused_with': confused, 'confusion': matrix}


def per_class_csv(table, names):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['class', 'images', 'top1', 'top5', 'most_confused_with', 'times'])
    for c, name in enumerate(names):
        other = table['confused_with'][c]
        fmt = (lambda v: '' if np.isnan(v) else f'{v:.4f}')
        writer.writerow([name, int(table['images'][c]), fmt(table['top1'][c]), fmt(table['top5'][c]),
                         names[other] if other >= 0 else '', int(table['confusion'][c, other]) if other >= 0 else 0])
    return buf.getvalue()


def plot_confusion(path, matrix, names, title):
    """confusion.png: rows normalised to each class's images; the MAX_SHOWN classes with most errors if more."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    shown = np.arange(len(names))
    if len(names) > MAX_SHOWN:
        errors = matrix.sum(axis=1) - np.diag(matrix)
        shown = np.sort(np.argsort(-errors, kind='stable')[:MAX_SHOWN])
        title += f' ({MAX_SHOWN} classes with most errors)'
    sub = matrix[np.ix_(shown, shown)].astype(np.float64)
    rows = np.maximum(matrix[shown].sum(axis=1, keepdims=True), 1)
    size = 4 + 0.25 * len(shown)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(100 * sub / rows, cmap='Blues', vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, label='% of the true class')
    ticks = [str(names[c]) for c in shown]
    ax.set_xticks(range(len(shown)), ticks, rotation=90, fontsize='small')
    ax.set_yticks(range(len(shown)), ticks, fontsize='small')
    ax.set_xlabel('predicted (top-1)')
    ax.set_ylabel('true class')
    ax.set_title(title)
    fig.tight_layout()
    tmp = path + '.tmp'
    fig.savefig(tmp, dpi=100, format='png')
    plt.close(fig)
    os.replace(tmp, path)


def _atomic_write(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8', newline='') as f:
        f.write(text)
    os.replace(tmp, path)


def write_report(folder, scores, labels, class_names, results, meta=None):
    """Write the files of --report for single-label data into `folder` and print the worst classes.
    `results`: validate's top1 / top5; -> summary dict."""
    os.makedirs(folder, exist_ok=True)
    names = [str(n) for n in class_names]
    table = class_table(scores, labels, len(names))
    present = np.flatnonzero(table['images'] > 0)
    summary = dict(results, mean_class_top1=float(np.mean(table['top1'][present])) if len(present) else 0.0,
                   images=int(len(labels)), classes=len(names), classes_without_images=len(names) - len(present))
    summary.update(meta or {})
    summary['date'] = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    _atomic_write(os.path.join(folder, 'per_class.csv'), per_class_csv(table, names))
    _atomic_write(os.path.join(folder, 'summary.json'), json.dumps(summary, indent=2) + '\n')
    plot_confusion(os.path.join(folder, 'confusion.png'), table['confusion'], names,
                   f"confusion, {summary['images']} images, top-1 {results['top1']:.2f}")
    worst = present[np.argsort(table['top1'][present], kind='stable')][:5]
    print('worst classes by top-1: ' + ', '.join(f"{names[c]} {table['top1'][c]:.1f}" for c in worst))
    print(f"report written to {folder}")
    return summary
