"""Evaluation metrics of the published code (docs/PUBLISHED_MATH.md), vectorised over samples and classes.

All inputs are numpy arrays [N, C]; a target counts as positive where it equals 1 (as published). A negative
target (-1) marks an *unknown* entry (a VOC "difficult" object, a label OpenImages did not verify): it is left
out of the class's ranking and counts, class by class, as the VOC and OpenImages protocols do. Without unknown
entries every result is the published one. Results in percent, except ``average_precision`` and
``per_class_threshold_metrics`` (fractions) and ``best_f1_thresholds`` (probabilities).
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


def per_class_threshold_metrics(targs, probs, thr=0.75):
    """Per-class counts and precision/recall/F1 (fractions) of predictions probs > thr, as arrays [C].

    `thr` is a float or an array [C] (a threshold per class). Unknown entries (target < 0) count neither as
    predictions nor as positives. Precision and recall are 0 for a class without a true positive.
    -> {'precision', 'recall', 'f1', 'tp', 'predicted', 'positives'}
    """
    targs = np.asarray(targs)
    pred = (np.asarray(probs) > thr) & (targs >= 0)  # (a float thr compares in the dtype of probs, as published)
    return _class_counts(pred, targs == 1)


def _class_counts(pred, pos):
    tp = (pred & pos).sum(axis=0)
    n_pred = pred.sum(axis=0)
    n_pos = pos.sum(axis=0)
    precision = _safe_div(tp, n_pred)
    recall = _safe_div(tp, n_pos)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {'precision': precision, 'recall': recall, 'f1': f1, 'tp': tp, 'predicted': n_pred, 'positives': n_pos}


def _summarise(per_class):
    """CP, CR, CF1 (means of the per-class values) and OP, OR, OF1 (of the pooled counts), in percent."""
    tp = per_class['tp'].sum()
    o_p = _safe_div(tp, per_class['predicted'].sum())
    o_r = _safe_div(tp, per_class['positives'].sum())
    o_f1 = _safe_div(2 * o_p * o_r, o_p + o_r)
    return {'CP': 100 * float(per_class['precision'].mean()), 'CR': 100 * float(per_class['recall'].mean()),
            'CF1': 100 * float(per_class['f1'].mean()),
            'OP': 100 * float(o_p), 'OR': 100 * float(o_r), 'OF1': 100 * float(o_f1)}


def threshold_metrics(targs, probs, thr=0.75):
    """Per-class (CP, CR, CF1) and overall (OP, OR, OF1) precision/recall/F1 of predictions probs > thr.

    Unknown entries (target < 0) count neither as predictions nor as positives. `thr` may also be an array [C]
    of per-class thresholds.

    Per-class precision and recall are 0 for a class without a true positive; CF1 is the mean of the per-class
    F1 scores (not the F1 of CP and CR); OF1 is the F1 of OP and OR.
    """
    return _summarise(per_class_threshold_metrics(targs, probs, thr))


def topk_metrics(targs, probs, k=3):
    """CP, CR, CF1, OP, OR, OF1 (percent) when each image's k highest scores are its predictions.

    The top k are taken over all classes (ties go to the lower class index); unknown entries among them are then
    left out, as threshold_metrics leaves them out: they count neither as predictions nor as positives.
    """
    probs, targs = np.asarray(probs), np.asarray(targs)
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind='stable')[:, :k]
    pred = np.zeros(probs.shape, dtype=bool)
    np.put_along_axis(pred, top, True, axis=1)
    return _summarise(_class_counts(pred & (targs >= 0), targs == 1))


def _best_cut(scores, pos):
    """The threshold t of one class (known entries only) whose predictions scores > t have the highest F1."""
    order = np.argsort(-scores, kind='stable')
    s, tp = scores[order], np.cumsum(pos[order])
    last = np.flatnonzero(np.r_[s[1:] < s[:-1], True])  # the last entry of each group of equal scores
    f1 = np.where(s[last] > 0, 2 * tp[last] / (last + 1 + tp[-1]), -1.0)  # (t >= 0 cannot pick out a score 0)
    i = int(np.argmax(f1))  # the highest of the best thresholds
    if f1[i] < 0:  # every score is 0 (or below): nothing can be picked out
        return 0.0
    lowest_in = float(s[last[i]])
    below = float(s[last[i] + 1]) if last[i] + 1 < len(s) else 0.0
    return _between(below, lowest_in)


def _between(lo, hi):
    """A threshold t with lo <= t < hi both in float64 and in float32 (infer.py compares in float32): the
    shortest decimal strictly between them near their midpoint, else lo itself."""
    mid = (lo + hi) / 2
    for digits in range(2, 10):
        t = float(f'{mid:.{digits}g}')
        if lo < t < hi and np.float32(lo) < np.float32(t) < np.float32(hi):
            return t
    return lo


def best_f1_thresholds(targs, probs, default=0.75):
    """The F1-optimal threshold of each class [C] for the rule probs > threshold, chosen on these scores.

    The candidates are the cuts between distinct known scores; the threshold returned lies between the lowest
    score predicted and the next lower one (0 below the lowest score): the shortest decimal near their midpoint,
    or that lower score itself where float32 has no number between. So probs > threshold makes exactly the best
    cut's predictions, in float64 and float32 alike. A class without positives gets `default`.
    """
    probs, targs = np.asarray(probs), np.asarray(targs)
    thresholds = np.full(probs.shape[1], float(default))
    for c in range(probs.shape[1]):
        known = targs[:, c] >= 0
        pos = targs[known, c] == 1
        if pos.any():
            thresholds[c] = _best_cut(probs[known, c], pos)
    return thresholds


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
