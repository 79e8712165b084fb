"""validate.py --report DIR (src_files/reporting/report.py) and the metrics it adds: per-class AP against scikit-learn,
the F1-optimal thresholds under the project's `score > threshold` rule (and as infer.py reads them), top-k metrics
by hand, the printed lines, the single-label report's files against scikit-learn, and validate.py end to end on a
random tresnet_m (marked slow)."""
import csv
import json
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

import validate
from tests.script_calls import call_main
from src_files.inference.predictions import read_thresholds
from src_files.reporting.report import FILES, SINGLE_LABEL_FILES, write_report, write_single_label_report
from src_files.helper_functions.metrics import (best_f1_thresholds, mAP, per_class_threshold_metrics,
                                                threshold_metrics, topk_metrics)

NAMES = ['cat', 'dog', 'car', 'sky', 'tree', 'boat', 'bird', 'sun']




def synthetic(seed=0, n=240, c=len(NAMES), decimals=None):
    """float32 sigmoid-like scores and targets with about 20% unknown (-1) entries; every class has positives."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < 0.3).astype(np.float32)
    strength = np.linspace(0.2, 3.0, c)  # class c's positives score higher the larger c is
    scores = 1 / (1 + np.exp(-(rng.normal(size=(n, c)) + strength * (2 * targets - 1))))
    if decimals is not None:  # ties
        scores = np.round(scores, decimals)
    targets[rng.random((n, c)) < 0.2] = -1
    return scores.astype(np.float32), targets


def read_rows(folder):
    with open(os.path.join(folder, 'per_class.csv'), newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('report') / 'new' / 'dir')  # created
    scores, targets = synthetic()  # no ties (scikit-learn ranks ties as one cut, the published AP one by one)
    summary = write_report(folder, scores, targets, NAMES, 0.6, meta={'checkpoint': 'x.pth'})
    return folder, scores, targets, summary


def test_files_rows_and_per_class_ap_match_sklearn(written):
    folder, scores, targets, _ = written
    assert sorted(os.listdir(folder)) == sorted(FILES)  # no .tmp left
    rows = read_rows(folder)
    assert [r['class'] for r in rows] == NAMES and 'display_name' not in rows[0]
    assert list(rows[0]) == ['class', 'AP', 'positives', 'unknown', 'best_threshold', 'precision_best',
                             'recall_best', 'F1_best', 'precision_at_thr', 'recall_at_thr', 'F1_at_thr']
    for c, row in enumerate(rows):
        known = targets[:, c] >= 0
        expected = average_precision_score(targets[known, c], scores[known, c])
        assert float(row['AP']) / 100 == pytest.approx(expected, abs=1e-3)
        assert int(row['positives']) == (targets[:, c] == 1).sum()
        assert int(row['unknown']) == (targets[:, c] < 0).sum()
    at_thr = per_class_threshold_metrics(targets, scores, 0.6)
    np.testing.assert_allclose([float(r['F1_at_thr']) for r in rows], 100 * at_thr['f1'], atol=1e-4)


def test_summary(written):
    folder, scores, targets, summary = written
    data = json.loads(open(os.path.join(folder, 'summary.json')).read())
    assert data == summary
    assert data['mAP'] == mAP(targets, scores)
    assert data['at_threshold'] == threshold_metrics(targets, scores, 0.6)
    assert data['top3'] == topk_metrics(targets, scores, 3)
    assert (data['images'], data['classes'], data['threshold']) == (240, 8, 0.6)
    assert data['unknown_entries'] == (targets < 0).sum() and data['checkpoint'] == 'x.pth'
    assert data['date'][:2] == '20' and 'T' in data['date']
    assert data['at_class_thresholds']['CF1'] >= data['at_threshold']['CF1']


def brute_force_best_f1(scores, targets):
    """Per class: the best F1 of the rule score >= v over the class's known distinct scores v (a plain loop)."""
    best = []
    for c in range(scores.shape[1]):
        known = targets[:, c] >= 0
        s, pos = scores[known, c], targets[known, c] == 1
        f1s = [2 * (pos & (s >= v)).sum() / ((s >= v).sum() + pos.sum()) for v in np.unique(s)]
        best.append(max(f1s))
    return np.array(best)


@pytest.mark.parametrize('decimals', [None, 2])
def test_thresholds_reproduce_the_best_f1_with_the_greater_than_rule(tmp_path, decimals):
    scores, targets = synthetic(seed=3, decimals=decimals)
    write_report(str(tmp_path), scores, targets, NAMES, 0.75)
    table = json.loads((tmp_path / 'thresholds.json').read_text())
    assert list(table) == NAMES and all(0 <= t <= 1 for t in table.values())
    thresholds = np.array([table[n] for n in NAMES])
    f1 = per_class_threshold_metrics(targets, scores, thresholds)['f1']
    np.testing.assert_allclose(f1, brute_force_best_f1(scores, targets), rtol=1e-12)
    rows = read_rows(tmp_path)
    np.testing.assert_allclose([float(r['F1_best']) for r in rows], 100 * f1, atol=1e-4)
    assert [float(r['best_threshold']) for r in rows] == list(thresholds)
    # infer.py reads the file into float32 thresholds; its scores are float32: the same predictions
    as_infer, missing = read_thresholds(str(tmp_path / 'thresholds.json'), NAMES, 0.75)
    assert missing == 0
    np.testing.assert_array_equal(per_class_threshold_metrics(targets, scores, as_infer)['f1'], f1)
    # per-class thresholds beat every single global threshold on CF1
    cf1 = threshold_metrics(targets, scores, thresholds)['CF1']
    candidates = np.r_[np.unique(scores), -1.0]
    best_global = max(threshold_metrics(targets, scores, t)['CF1'] for t in candidates)
    assert cf1 >= best_global - 1e-9


def test_threshold_between_adjacent_float32_scores_and_below_the_lowest():
    hi = np.float32(0.5)
    lo = np.nextafter(hi, np.float32(0))  # no float32 number between: the threshold is the lower score itself
    scores = np.array([[hi, 0.8], [lo, 0.6]], np.float32)
    targets = np.array([[1, 1], [0, 1]], np.float32)
    thresholds = best_f1_thresholds(targets, scores)
    assert thresholds[0] == float(lo) and 0 < thresholds[1] < 0.6  # class 1: every score predicted
    for thr in (thresholds, thresholds.astype(np.float32)):
        assert (scores > thr).tolist() == [[True, True], [False, True]]


def test_class_without_positives_keeps_thr_and_is_not_among_the_worst(tmp_path, capsys):
    scores, targets = synthetic(seed=4)
    targets[:, 2] = np.where(targets[:, 2] == 1, 0, targets[:, 2])
    assert best_f1_thresholds(targets, scores, default=0.42)[2] == 0.42
    write_report(str(tmp_path), scores, targets, NAMES, 0.42)
    assert json.loads((tmp_path / 'thresholds.json').read_text())['car'] == 0.42
    out = capsys.readouterr().out.splitlines()
    ap = {r['class']: float(r['AP']) for r in read_rows(tmp_path)}
    worst = sorted((n for n in NAMES if n != 'car'), key=lambda n: ap[n])[:5]
    assert out[0] == 'worst classes by AP: ' + ', '.join(f'{n} {ap[n]:.1f}' for n in worst)
    assert out[0].startswith('worst classes by AP: cat ') and 'car' not in out[0]
    assert out[1].startswith('1 classes have no known positive') and out[-1] == f'report written to {tmp_path}'


def test_display_names_column_and_threshold_keys(tmp_path, capsys):
    scores, targets = synthetic(seed=5, c=3)
    mids, shown = ['/m/01', '/m/02', '/m/03'], ['Cat', 'Dog', 'Car']
    write_report(str(tmp_path), scores, targets, mids, 0.5, display_names=shown, threshold_names=shown)
    rows = read_rows(tmp_path)
    assert [(r['class'], r['display_name']) for r in rows] == list(zip(mids, shown))
    assert list(json.loads((tmp_path / 'thresholds.json').read_text())) == shown
    assert capsys.readouterr().out.startswith('worst classes by AP: Cat ')


def test_topk_metrics_by_hand():
    targets = np.array([[1, 0, 1, 0, 0],
                        [0, 1, -1, 0, 1],
                        [0, 0, 0, 1, 0]])
    scores = np.array([[0.9, 0.8, 0.1, 0.0, 0.7],   # top-3: 0, 1, 4 -> class 0 hit
                       [0.2, 0.9, 0.7, 0.1, 0.3],   # top-3: 1, 2 (unknown: left out), 4 -> classes 1, 4 hit
                       [0.5, 0.1, 0.3, 0.2, 0.4]])  # top-3: 0, 4, 2 -> no hit
    # predicted per class: 0: 2 (1 tp), 1: 2 (1 tp), 2: 1 (0 tp), 3: 0, 4: 3 (1 tp); positives: 1, 1, 1, 1, 1
    precision = np.array([1 / 2, 1 / 2, 0, 0, 1 / 3])
    recall = np.array([1, 1, 0, 0, 1])
    f1 = np.array([2 * p * r / (p + r) if p + r else 0 for p, r in zip(precision, recall)])
    o_p, o_r = 3 / 8, 3 / 5
    out = topk_metrics(targets, scores, 3)
    expected = {'CP': precision.mean(), 'CR': recall.mean(), 'CF1': f1.mean(), 'OP': o_p, 'OR': o_r,
                'OF1': 2 * o_p * o_r / (o_p + o_r)}
    assert out == pytest.approx({k: 100 * v for k, v in expected.items()})
    assert topk_metrics(targets, scores, 9) == topk_metrics(targets, scores, 5)  # k beyond the classes: all


def test_single_label_report_files_against_scikit_learn(tmp_path, capsys):
    from sklearn.metrics import confusion_matrix, recall_score
    names = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6']
    rng = np.random.RandomState(2)
    labels = rng.choice([0, 1, 2, 4, 5, 6], 150)  # class 3 has no image
    scores = rng.rand(150, 7) + 0.6 * np.eye(7)[labels]
    top1 = 100 * float(np.mean(scores.argmax(axis=1) == labels))
    summary = write_single_label_report(str(tmp_path / 'r'), scores, labels, names, {'top1': top1, 'top5': 99.0},
                                        meta={'checkpoint': 'm.pth'})
    assert sorted(os.listdir(tmp_path / 'r')) == sorted(SINGLE_LABEL_FILES)
    present = [0, 1, 2, 4, 5, 6]
    recall = recall_score(labels, scores.argmax(axis=1), labels=present, average=None, zero_division=0)
    rows = read_rows(tmp_path / 'r')
    assert [r['class'] for r in rows] == names and rows[3]['images'] == '0' and rows[3]['top1'] == ''
    assert [float(rows[c]['top1']) for c in present] == pytest.approx(100 * recall, abs=1e-4)
    matrix = confusion_matrix(labels, scores.argmax(axis=1), labels=range(7))
    off = matrix - np.diag(np.diag(matrix))
    assert rows[0]['most_confused_with'] == names[off[0].argmax()] and int(rows[0]['times']) == off[0].max()
    assert summary['mean_class_top1'] == pytest.approx(100 * recall.mean())
    assert (summary['images'], summary['classes'], summary['classes_without_images']) == (150, 7, 1)
    assert json.loads((tmp_path / 'r' / 'summary.json').read_text())['checkpoint'] == 'm.pth'
    assert (tmp_path / 'r' / 'confusion.png').read_bytes()[:4] == b'\x89PNG'
    out = capsys.readouterr().out
    worst = present[int(np.argmin(recall))]
    assert f"worst classes by top-1: {names[worst]} {100 * recall.min():.1f}" in out
    assert f"report written to {tmp_path / 'r'}" in out


def test_report_with_zsl_is_a_one_line_error(tmp_path, capfd):
    code, out, err = call_main(validate, ['--zsl', 1, '--report', tmp_path / 'r', '--model-path',
                                          tmp_path / 'missing.pth'], capfd)
    errors = [line for line in err.splitlines() if line.startswith('error: ')]
    assert code != 0 and 'Traceback' not in err and len(errors) == 1, err
    assert '--report' in errors[0] and '--zsl 1' in errors[0]


@pytest.mark.slow
def test_validate_report_end_to_end(tmp_path, capfd):
    from src_files.data import demo_coco_root
    from src_files.data.formats import load_datasets
    from src_files.training.checkpoint import save_best
    from src_files.models import create_model
    from src_files.models.config import ModelConfig
    coco = demo_coco_root(cache_dir=str(tmp_path / 'demo'), num_train=16, num_val=12)
    names = list(load_datasets(coco, 'auto', None, None, need_train=False).class_names)
    cfg = ModelConfig(model_name='tresnet_m', num_classes=len(names), num_of_groups=2, decoder_embedding=64,
                      image_size=64)
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', **{k: v for k, v in cfg.to_dict().items() if k != 'model_name'})
    save_best(str(tmp_path / 'best.pth'), model.state_dict(), names, cfg.to_dict())
    folder = tmp_path / 'report'
    code, out, err = call_main(validate, ['--model-path', tmp_path / 'best.pth', '--data', coco, '--workers', 0,
                                          '--batch-size', 6, '--report', folder], capfd)
    assert code == 0, err
    summary = json.loads((folder / 'summary.json').read_text())
    printed = float([line for line in out.splitlines() if line.startswith('mAP ')][0].split()[1])
    assert printed == round(summary['mAP'], 2)
    aps = [float(r['AP']) for r in read_rows(folder)]
    assert np.mean(aps) == pytest.approx(summary['mAP'], abs=1e-3)
    assert [r['class'] for r in read_rows(folder)] == names
    assert list(json.loads((folder / 'thresholds.json').read_text())) == names
    assert (summary['images'], summary['classes'], summary['data_format']) == (12, len(names), 'coco')
    assert summary['checkpoint'] == str(tmp_path / 'best.pth') and summary['data'] == coco
    assert (folder / 'pr_curves.png').stat().st_size > 1000
    assert 'worst classes by AP: ' in out and f'report written to {folder}' in out
