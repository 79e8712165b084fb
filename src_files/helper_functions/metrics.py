"""Evaluation metrics of the published code (docs/PUBLISHED_MATH.md), vectorised over samples and classes.

All inputs are numpy arrays [N, C]; a target counts as positive where it equals 1 (as published). A negative
target (-1) marks an *unknown* entry (a VOC "difficult" object, a label OpenImages did not verify): it is left
out of the class's ranking and counts, class by class, as the VOC and OpenImages protocols do. Without unknown
entries every result is the published one. Results in percent, except ``average_precision``.
"""
import numpy as np

_EPS = 1e-8


def average_precision(scores, targets):
    """AP per class [C]: sum of the precision at the rank of each positive / (number of positives + 1e-8),
    so a class without positives scores 0. Ties keep the published order (numpy argsort, reversed)."""
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim == 1:
        scores, targets = scores[:, None], targets[:, None]
    if scores.shape[0] == 0:
        return np.zeros(scores.shape[1])
    unknown = targets < 0
    if unknown.any():  # ranked after every known entry, so they change no precision at a positive's rank
        scores = np.where(unknown, -np.inf, scores)
    order = np.argsort(scores, axis=0)[::-1]
    is_pos = np.take_along_axis(targets, order, axis=0) == 1
    pos_count = np.cumsum(is_pos, axis=0)
    rank = np.arange(1, scores.shape[0] + 1)[:, None]
    precision_sum = np.where(is_pos, pos_count / rank, 0.0).sum(axis=0)
    return precision_sum / (pos_count[-1] + _EPS)


def mAP(targs, preds):
    """Mean AP over classes, in percent (0 for an empty array)."""
    if np.size(preds) == 0:
        return 0.0
    return float(100 * average_precision(preds, targs).mean())


def _safe_div(num, den):
    """num / den elementwise, 0 where den is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def threshold_metrics(targs, probs, thr=0.75):
    """Per-class (CP, CR, CF1) and overall (OP, OR, OF1) precision/recall/F1 of predictions probs > thr.

    Unknown entries (target < 0) count neither as predictions nor as positives.

    Per-class precision and recall are 0 for a class without a true positive; CF1 is the mean of the per-class
    F1 scores (not the F1 of CP and CR); OF1 is the F1 of OP and OR.
    """
    targs = np.asarray(targs)
    pred = (np.asarray(probs) > thr) & (targs >= 0)
    pos = targs == 1
    tp = (pred & pos).sum(axis=0)
    n_pred = pred.sum(axis=0)
    n_pos = pos.sum(axis=0)
    precision = _safe_div(tp, n_pred)
    recall = _safe_div(tp, n_pos)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    o_p = _safe_div(tp.sum(), n_pred.sum())
    o_r = _safe_div(tp.sum(), n_pos.sum())
    o_f1 = _safe_div(2 * o_p * o_r, o_p + o_r)
    return {'CP': 100 * float(precision.mean()), 'CR': 100 * float(recall.mean()), 'CF1': 100 * float(f1.mean()),
            'OP': 100 * float(o_p), 'OR': 100 * float(o_r), 'OF1': 100 * float(o_f1)}


def f1_at_k(targs, scores, k):
    """Zero-shot precision/recall/F1 at the top-k classes of each image (Fast0Tag protocol), in percent:
    precision = hits / (k x images), recall = hits / all positives. Ties go to the lower class index. With fewer
    than k classes every class is predicted and precision is hits / predictions, i.e. k becomes the class count
    (the published torch.topk would fail there)."""
    scores = np.asarray(scores)
    pos = np.asarray(targs) == 1
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    hits = np.take_along_axis(pos, top, axis=1).sum()
    precision = _safe_div(hits, k * scores.shape[0])
    recall = _safe_div(hits, pos.sum())
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {'precision': 100 * float(precision), 'recall': 100 * float(recall), 'f1': 100 * float(f1)}


class AverageMeter:
    """Running average of a scalar (e.g. the loss), weighted by ``n`` samples per update."""

    def __init__(self):
        self.val = 0.0
        self.avg = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count
