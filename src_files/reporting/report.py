"""validate.py --report DIR: where a model fails, class by class; and validate.py --save-scores FILE.csv.

Multi-label data (`write_report`): DIR gets per_class.csv (AP, counts and precision/recall/F1 at the class's
F1-optimal threshold and at --thr, one row per class in the data's order), summary.json (mAP; CP, CR, CF1, OP, OR,
OF1 at --thr, at the per-class thresholds and for each image's top 3; counts and provenance), thresholds.json (the
F1-optimal threshold of each class, {class name: threshold}, the format infer.py --thresholds reads) and
pr_curves.png (precision-recall of all known entries pooled and of the 3 best and 3 worst classes by AP). Unknown
entries (target -1) are left out class by class, as every metric of src_files/helper_functions/metrics.py leaves
them out.

Single-label data (`write_single_label_report`): DIR gets per_class.csv (one row per class in the data's order:
images, top-1 and top-5 accuracy of the class's images, and the class they are most often taken for),
summary.json (top-1, top-5, mean per-class accuracy, counts and provenance) and confusion.png (the confusion
matrix, each row normalised to the class's images; for more than MAX_SHOWN classes, the MAX_SHOWN classes with the
most errors).

`write_scores`: every image's probabilities, one CSV row per image.

Each file is written whole or not at all (src_files/files.py).
"""
import csv
import datetime
import io
import json
import os

import numpy as np

from src_files.files import atomic_replace, atomic_write_text
from src_files.helper_functions.metrics import (average_precision, best_f1_thresholds, mAP,
                                                per_class_threshold_metrics, threshold_metrics, topk_metrics)

FILES = ('per_class.csv', 'summary.json', 'thresholds.json', 'pr_curves.png')
SINGLE_LABEL_FILES = ('per_class.csv', 'summary.json', 'confusion.png')
TOP_K = 3
MAX_SHOWN = 40  # classes of confusion.png


def model_names(model_classes, columns):
    """The checkpoint's name of each class of the data (the names infer.py matches --thresholds against), given
    the model's class names and the columns evaluation.predict.match_classes returned (None: the identity)."""
    if not model_classes:
        return None
    if columns is None:
        return list(model_classes)
    return [model_classes[c] for c in columns]


def class_table(scores, targets, thr):
    """Per-class arrays [C]: AP, positives, unknown, best_threshold, and the per_class_threshold_metrics at the
    best thresholds ('best') and at thr ('at_thr')."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    best_thr = best_f1_thresholds(targets, scores, default=thr)
    return {'AP': 100 * average_precision(scores, targets), 'positives': (targets == 1).sum(axis=0),
            'unknown': (targets < 0).sum(axis=0), 'best_threshold': best_thr,
            'best': per_class_threshold_metrics(targets, scores, best_thr),
            'at_thr': per_class_threshold_metrics(targets, scores, thr)}


def summarise(scores, targets, thr, thresholds, meta=None):
    """The contents of summary.json."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    out = {'mAP': mAP(targets, scores), 'threshold': thr,
           'at_threshold': threshold_metrics(targets, scores, thr),
           'at_class_thresholds': threshold_metrics(targets, scores, thresholds),
           f'top{TOP_K}': topk_metrics(targets, scores, TOP_K),
           'images': int(scores.shape[0]), 'classes': int(scores.shape[1]),
           'unknown_entries': int((targets < 0).sum()),
           'classes_without_positives': int(((targets == 1).sum(axis=0) == 0).sum())}
    out.update(meta or {})
    out['date'] = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    return out


def per_class_csv(table, class_names, display_names=None):
    """The text of per_class.csv (precision, recall and F1 in percent)."""
    show_display = display_names is not None and list(display_names) != list(class_names)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['class'] + (['display_name'] if show_display else []) +
                    ['AP', 'positives', 'unknown', 'best_threshold', 'precision_best', 'recall_best', 'F1_best',
                     'precision_at_thr', 'recall_at_thr', 'F1_at_thr'])
    for c, name in enumerate(class_names):
        metrics = [100 * table[at][key][c] for at in ('best', 'at_thr') for key in ('precision', 'recall', 'f1')]
        writer.writerow([name] + ([display_names[c]] if show_display else []) +
                        [f"{table['AP'][c]:.4f}", int(table['positives'][c]), int(table['unknown'][c]),
                         repr(float(table['best_threshold'][c]))] + [f'{m:.4f}' for m in metrics])
    return buf.getvalue()


def ranked_classes(table):
    """Indices of the classes with at least one known positive, best AP first (ties: data order)."""
    has_pos = np.flatnonzero(table['positives'] > 0)
    return has_pos[np.argsort(-table['AP'][has_pos], kind='stable')]


def worst_line(table, names, n=5):
    """`worst classes by AP: name 12.3, ...` (classes without positives are left out: their AP is 0 by rule)."""
    worst = ranked_classes(table)[::-1][:n]
    if not len(worst):
        return 'worst classes by AP: none (no class has a known positive)'
    return 'worst classes by AP: ' + ', '.join(f"{names[c]} {table['AP'][c]:.1f}" for c in worst)


def pr_curve(scores, positive):
    """(recall, precision) of the rule score >= s for each distinct score s, highest first, from recall 0."""
    order = np.argsort(-scores, kind='stable')
    s, tp = scores[order], np.cumsum(positive[order])
    last = np.flatnonzero(np.r_[s[1:] < s[:-1], True])
    recall, precision = tp[last] / max(tp[-1], 1), tp[last] / (last + 1)
    return np.r_[0.0, recall], np.r_[precision[:1], precision]


def _pyplot():
    """matplotlib's pyplot on its file-only backend (imported on first use: a heavy package)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save_figure(plt, fig, path):
    """Write `fig` as a PNG to `path`, whole or not at all, and close it."""
    try:
        atomic_replace(lambda tmp: fig.savefig(tmp, dpi=100, format='png'), path)
    finally:
        plt.close(fig)


def plot_pr_curves(path, scores, targets, table, names, title):
    """pr_curves.png: the micro average (every known entry pooled) and the 3 best and 3 worst classes by AP."""
    plt = _pyplot()
    scores, targets = np.asarray(scores), np.asarray(targets)
    fig, ax = plt.subplots(figsize=(8, 7.5))
    known = targets >= 0
    if (targets == 1).any():
        pooled_s, pooled_pos = scores[known], targets[known] == 1
        micro_ap = 100 * average_precision(pooled_s, pooled_pos.astype(np.float64))[0]
        ax.step(*pr_curve(pooled_s, pooled_pos), where='pre', color='black', linewidth=2.5,
                label=f'micro average (all classes pooled), AP {micro_ap:.1f}')
    ranked = list(ranked_classes(table))
    best = ranked[:3]
    worst = [c for c in ranked[::-1][:3] if c not in best][::-1]
    for group, style, kind in ((best, '-', 'best'), (worst, '--', 'worst')):
        for c in group:
            col = known[:, c]
            ax.step(*pr_curve(scores[col, c], targets[col, c] == 1), where='pre', linestyle=style,
                    label=f"{kind}: {names[c]}, AP {table['AP'][c]:.1f}")
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize='small')
    else:
        ax.text(0.5, 0.5, 'no known positive in this data', ha='center', transform=ax.transAxes)
    fig.tight_layout()
    _save_figure(plt, fig, path)


def write_report(folder, scores, targets, class_names, thr, display_names=None, threshold_names=None, meta=None):
    """Write the four files of --report into `folder` (created) and print the worst classes; -> summary dict.

    scores, targets: [N, C] in the order of `class_names` (the data's); `display_names`: readable names where
    they differ (OpenImages MIDs); `threshold_names`: the keys of thresholds.json (default: class_names; validate
    passes the checkpoint's names, which infer.py matches); `meta`: more summary.json fields (checkpoint, data).
    """
    os.makedirs(folder, exist_ok=True)
    class_names = [str(n) for n in class_names]
    shown = [str(n) for n in display_names] if display_names is not None else class_names
    table = class_table(scores, targets, thr)
    summary = summarise(scores, targets, thr, table['best_threshold'], meta)
    keys = [str(n) for n in threshold_names] if threshold_names is not None else class_names
    if len(set(keys)) != len(keys):  # (names a JSON object cannot hold apart)
        keys = class_names
    thresholds = {name: float(t) for name, t in zip(keys, table['best_threshold'])}
    atomic_write_text(per_class_csv(table, class_names, display_names), os.path.join(folder, 'per_class.csv'))
    atomic_write_text(json.dumps(summary, indent=2) + '\n', os.path.join(folder, 'summary.json'))
    atomic_write_text(json.dumps(thresholds, indent=2, ensure_ascii=False) + '\n',
                      os.path.join(folder, 'thresholds.json'))
    title = f"precision-recall, {summary['images']} images, {summary['classes']} classes, mAP {summary['mAP']:.2f}"
    plot_pr_curves(os.path.join(folder, 'pr_curves.png'), scores, targets, table, shown, title)
    print(worst_line(table, shown))
    if summary['classes_without_positives']:
        print(f"{summary['classes_without_positives']} classes have no known positive in this data (AP 0, "
              f"threshold --thr {thr}; left out of the worst classes)")
    print(f"report written to {folder}")
    return summary


# ----------------------------------------------------------------------------------------------------------
# Single-label data.

def confusion(scores, labels, num_classes):
    """[C, C] counts: row = true class, column = top-1 prediction (ties: the lower class index, as argmax)."""
    predicted = np.asarray(scores).argmax(axis=1)
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), predicted), 1)
    return matrix


def single_label_table(scores, labels, num_classes, k=5):
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


def single_label_csv(table, names):
    """The text of per_class.csv of single-label data (accuracies in percent)."""
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
    plt = _pyplot()
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
    _save_figure(plt, fig, path)


def write_single_label_report(folder, scores, labels, class_names, results, meta=None):
    """Write the files of --report for single-label data into `folder` (created) and print the worst classes.

    scores: [N, C] in the order of `class_names`; labels: class indices [N]; `results`: validate's top1 / top5;
    `meta`: more summary.json fields (checkpoint, data); -> summary dict."""
    os.makedirs(folder, exist_ok=True)
    names = [str(n) for n in class_names]
    table = single_label_table(scores, labels, len(names))
    present = np.flatnonzero(table['images'] > 0)
    summary = dict(results, mean_class_top1=float(np.mean(table['top1'][present])) if len(present) else 0.0,
                   images=int(len(labels)), classes=len(names), classes_without_images=len(names) - len(present))
    summary.update(meta or {})
    summary['date'] = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    atomic_write_text(single_label_csv(table, names), os.path.join(folder, 'per_class.csv'))
    atomic_write_text(json.dumps(summary, indent=2) + '\n', os.path.join(folder, 'summary.json'))
    plot_confusion(os.path.join(folder, 'confusion.png'), table['confusion'], names,
                   f"confusion, {summary['images']} images, top-1 {results['top1']:.2f}")
    worst = present[np.argsort(table['top1'][present], kind='stable')][:5]
    print('worst classes by top-1: ' + ', '.join(f"{names[c]} {table['top1'][c]:.1f}" for c in worst))
    print(f"report written to {folder}")
    return summary


# ----------------------------------------------------------------------------------------------------------
# --save-scores.

def write_scores(path, image_ids, class_names, scores):
    """CSV `image,<class 1>,...` at `path` (its folder created): one row per image, its probability for each
    class; written row by row to `path.tmp`, renamed onto `path` once whole."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp):
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(['image'] + list(class_names))
            for image, row in zip(image_ids, np.asarray(scores, dtype=np.float64)):
                writer.writerow([image] + [f'{value:.7g}' for value in row])
    atomic_replace(write, path)
