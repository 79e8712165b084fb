"""Each dataset layout end to end: train.py trains one epoch on it, validate.py scores it and writes the scores
file, and the printed mAP equals scikit-learn's AP computed from that file and the ground truth (unknown entries
left out class by class; a class without a known positive counts 0, as in the published mAP; tied scores ranked
either way)."""
import csv
import re

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

import train
import validate
from src_files.data import demo_coco_root
from src_files.data.formats import load_datasets
from src_files.data.layouts import export_layout
from tests.script_calls import call_main
from tests.test_scripts import SMALL

pytestmark = pytest.mark.slow

LAYOUTS = {'voc': 'voc', 'csv': 'csv', 'openimages': 'openimages', 'coco2017': 'coco'}


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return demo_coco_root(cache_dir=str(tmp_path_factory.mktemp('demo')), num_train=40, num_val=16)


def independent_map(scores_file, data_dir, data_format):
    """mAP in percent from the scores CSV and the dataset's own targets, with scikit-learn -> (lowest, highest,
    unknown entries). Images with equal scores (a probability saturated at float32's resolution near 1) may be
    ranked either way, and scikit-learn and the published AP settle such ties differently: the lowest mAP ranks the
    negatives of each tie first, the highest its positives; without ties the two are equal."""
    with open(scores_file, newline='') as f:
        rows = list(csv.reader(f))
    val = load_datasets(str(data_dir), data_format, need_train=False).val
    target_of = {image_id: val.target(i).numpy() for i, image_id in enumerate(val.image_ids)}
    assert len(rows) - 1 == len(val)
    scores = np.array([row[1:] for row in rows[1:]], dtype=np.float64)
    return map_bounds(scores, np.stack([target_of[row[0]] for row in rows[1:]]))


def map_bounds(scores, targets):
    """(lowest, highest, unknown entries) of scikit-learn's mAP in percent of `scores` [N, C] against `targets`
    (1 / 0 / -1 unknown, left out), over the orders of tied scores (independent_map)."""
    low, high = [], []
    for c in range(targets.shape[1]):
        known = targets[:, c] >= 0
        positives, s = targets[known, c] == 1, scores[known, c]
        if not positives.any():
            low.append(0.0)
            high.append(0.0)
            continue
        gaps = np.diff(np.unique(s))
        step = (gaps.min() if gaps.size else 1.0) / 4
        nudge = step * np.where(positives, 1.0, -1.0)  # reorders ties only
        # (and a smaller, distinct offset per image: scikit-learn scores a tie as one threshold, which no strict
        # ranking does, while the published AP ranks every image; tied positives in any order give the same AP)
        apart = step * 1e-3 * np.arange(len(s)) / max(len(s), 1)
        low.append(average_precision_score(positives, s - nudge + apart))
        high.append(average_precision_score(positives, s + nudge + apart))
    return 100 * float(np.mean(low)), 100 * float(np.mean(high)), int((targets < 0).sum())


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_train_and_validate_each_layout(layout, coco, tmp_path, capfd):
    data = tmp_path / layout
    export_layout(coco, str(data), layout)
    fmt = LAYOUTS[layout]
    code, out, err = call_main(train, ['--data', data, '--data-format', fmt, '--epochs', 1, '--output-dir',
                                       tmp_path / 'run'] + SMALL, capfd)
    assert code == 0, err
    detected = {'csv': "csv (tags separated by ';')"}.get(fmt, fmt)
    assert f'data: {detected}, 16 classes' in out and re.search(r'^epoch 1/1 loss [\d.]+ mAP', out, re.M), out
    scores_file = tmp_path / 'scores.csv'
    code, out, err = call_main(validate, ['--model-path', tmp_path / 'run' / 'best.pth', '--data', data,
                                          '--workers', 0, '--save-scores', scores_file], capfd)
    assert code == 0, err
    printed = float(re.search(r'^mAP ([\d.]+)', out, re.M).group(1))
    lowest, highest, unknown = independent_map(scores_file, data, fmt)
    assert lowest - 0.05 <= printed <= highest + 0.05, (lowest, printed, highest)
    assert highest - lowest < 5  # ties in a class or two at most: the check stays sharp
    assert (unknown > 0) == (layout in ('voc', 'openimages'))
    assert (f'{unknown} of ' in out) == (unknown > 0), out
