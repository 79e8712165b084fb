"""Metrics against the published implementation (tests/reference) and independent computations."""
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from src_files.helper_functions.metrics import AverageMeter, average_precision, f1_at_k, mAP, threshold_metrics

REF = json.loads((Path(__file__).parent / 'reference' / 'losses_metrics.json').read_text())


def ref_probs_targets():
    return 1 / (1 + np.exp(-np.array(REF['logits']))), np.array(REF['targets'])


def test_map_matches_reference():
    probs, targets = ref_probs_targets()
    assert mAP(targets, probs) == pytest.approx(REF['mAP'], rel=1e-6)


def test_threshold_metrics_match_reference():
    probs, targets = ref_probs_targets()
    ref = REF['threshold_metrics']
    ours = threshold_metrics(targets, probs, thr=ref['thr'])
    assert set(ours) == {'CP', 'CR', 'CF1', 'OP', 'OR', 'OF1'}
    for key, value in ours.items():
        assert value == pytest.approx(ref[key], rel=1e-6), key


def test_ap_agrees_with_sklearn():
    rng = np.random.default_rng(0)
    targets = (rng.random((200, 7)) < 0.3).astype(np.float64)
    scores = rng.random((200, 7)) + 0.5 * targets  # continuous: no ties
    expected = [average_precision_score(targets[:, c], scores[:, c]) for c in range(7)]
    np.testing.assert_allclose(average_precision(scores, targets), expected, rtol=1e-6)
    assert mAP(targets, scores) == pytest.approx(100 * np.mean(expected), rel=1e-6)


def test_class_without_positives_scores_zero():
    targets = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.8], [0.1, 0.2], [0.5, 0.7]])
    ap = average_precision(scores, targets)
    assert ap[1] == 0
    assert ap[0] == pytest.approx(1.0, rel=1e-6)
    assert mAP(np.zeros((0, 3)), np.zeros((0, 3))) == 0


def test_f1_at_k_tiny_example():
    targets = np.array([[1, 0, 1, 0],
                        [0, 1, 0, 0],
                        [0, 0, 0, 1]])
    scores = np.array([[0.9, 0.8, 0.1, 0.0],   # top-2: classes 0, 1 -> 1 hit
                       [0.2, 0.9, 0.7, 0.1],   # top-2: classes 1, 2 -> 1 hit
                       [0.5, 0.1, 0.3, 0.2]])  # top-2: classes 0, 2 -> 0 hits
    # By hand: hits 2, predicted 2 x 3 = 6, positives 4.
    precision, recall = 2 / 6, 2 / 4
    f1 = 2 * precision * recall / (precision + recall)
    out = f1_at_k(targets, scores, 2)
    assert out['precision'] == pytest.approx(100 * precision)
    assert out['recall'] == pytest.approx(100 * recall)
    assert out['f1'] == pytest.approx(100 * f1)
    # k = 1: classes 0, 1, 0 -> hits 2 of 3 predicted, 4 positives.
    out = f1_at_k(targets, scores, 1)
    assert out['precision'] == pytest.approx(100 * 2 / 3)
    assert out['recall'] == pytest.approx(100 * 2 / 4)
    # k beyond the 4 classes: every class is predicted (hits 4 of 12 predictions), as k = 4 gives.
    assert f1_at_k(targets, scores, 5) == f1_at_k(targets, scores, 4)
    assert f1_at_k(targets, scores, 5)['precision'] == pytest.approx(100 * 4 / 12)


def test_average_meter():
    meter = AverageMeter()
    meter.update(2.0, n=3)
    meter.update(4.0)
    assert (meter.val, meter.sum, meter.count) == (4.0, 10.0, 4)
    assert meter.avg == pytest.approx(2.5)


def partial_labels(seed=1, n=300, c=6):
    """Scores without ties and targets with about 30% unknown (-1) entries, every class keeping positives."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < 0.3).astype(np.float64)
    scores = rng.random((n, c)) + 0.4 * targets
    targets[rng.random((n, c)) < 0.3] = -1
    return scores, targets


def test_unknown_entries_are_left_out_class_by_class():
    scores, targets = partial_labels()
    expected = []
    for c in range(targets.shape[1]):
        known = targets[:, c] >= 0
        expected.append(average_precision_score(targets[known, c], scores[known, c]))
    np.testing.assert_allclose(average_precision(scores, targets), expected, rtol=1e-9)
    assert mAP(targets, scores) == pytest.approx(100 * np.mean(expected), rel=1e-9)


def test_threshold_metrics_ignore_unknown_entries():
    scores, targets = partial_labels(seed=2)
    thr = 0.7
    precision, recall, tp_all, pred_all, pos_all = [], [], 0, 0, 0
    for c in range(targets.shape[1]):  # a per-class loop over the known entries only
        known = targets[:, c] >= 0
        pred, pos = scores[known, c] > thr, targets[known, c] == 1
        tp = int((pred & pos).sum())
        precision.append(tp / pred.sum())
        recall.append(tp / pos.sum())
        tp_all, pred_all, pos_all = tp_all + tp, pred_all + pred.sum(), pos_all + pos.sum()
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    o_p, o_r = tp_all / pred_all, tp_all / pos_all
    ours = threshold_metrics(targets, scores, thr)
    assert ours['CP'] == pytest.approx(100 * np.mean(precision))
    assert ours['CR'] == pytest.approx(100 * np.mean(recall))
    assert ours['CF1'] == pytest.approx(100 * np.mean(f1))
    assert ours['OP'] == pytest.approx(100 * o_p)
    assert ours['OR'] == pytest.approx(100 * o_r)
    assert ours['OF1'] == pytest.approx(100 * 2 * o_p * o_r / (o_p + o_r))
