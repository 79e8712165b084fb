"""validate.py's data side: class matching by name and the unknown note (src_files/evaluation/predict.py), the
scores file (src_files/reporting/report.py), and the line describing what was read (src_files/data/formats.py,
which train.py prints too)."""
import csv
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from src_files.data.formats import describe
from src_files.errors import UserError
from src_files.evaluation.predict import match_classes, unknown_note
from src_files.reporting.report import write_scores


def splits(class_names, display_names=None):
    return SimpleNamespace(class_names=class_names, display_names=display_names or class_names, format='csv')


def test_same_names_in_the_same_order_need_no_reordering():
    assert match_classes(['cat', 'dog'], splits(['cat', 'dog']), 'm.pth', 2) is None


def test_names_in_another_order_are_matched_by_name(caplog):
    caplog.set_level(logging.INFO, logger='src_files')
    columns = match_classes(['Dog', 'cat ', 'bird'], splits(['bird', 'cat', 'dog']), 'm.pth', 3)
    assert list(columns) == [2, 1, 0]
    assert 'matched by class name' in caplog.text
    scores = np.array([[0.1, 0.2, 0.3]])  # model columns: dog, cat, bird
    np.testing.assert_array_equal(scores[:, columns], [[0.3, 0.2, 0.1]])


def test_display_names_match_a_checkpoint_that_records_them():
    data = splits(['/m/01', '/m/02'], ['Cat', 'Dog'])
    assert list(match_classes(['dog', 'cat'], data, 'm.pth', 2)) == [1, 0]
    assert match_classes(['/m/01', '/m/02'], data, 'm.pth', 2) is None


def test_a_checkpoint_with_more_classes_scores_the_data_s_subset():
    assert list(match_classes(['a', 'b', 'c'], splits(['a', 'c']), 'm.pth', 3)) == [0, 2]


def test_names_that_do_not_match_are_an_error():
    with pytest.raises(UserError, match=r"1 of the 2 classes of the data are not among .* 'horse'"):
        match_classes(['cat', 'dog'], splits(['cat', 'horse']), 'm.pth', 2)


def test_unnamed_classes_need_the_same_count():
    assert match_classes(['0', '1'], splits(['cat', 'dog']), 'm.pth', 2) is None
    assert match_classes(None, splits(['cat', 'dog']), 'm.pth', 2) is None
    with pytest.raises(UserError, match='scores 3 classes but csv data has 2'):
        match_classes(None, splits(['cat', 'dog']), 'm.pth', 3)


def test_scores_file_round_trips(tmp_path):
    scores = np.random.default_rng(0).random((3, 2)).astype(np.float32)
    path = tmp_path / 'sub' / 'scores.csv'
    write_scores(str(path), ['a/1.jpg', 'b,2.jpg', '3'], ['cat', 'dog, big'], scores)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ['image', 'cat', 'dog, big']
    assert [r[0] for r in rows[1:]] == ['a/1.jpg', 'b,2.jpg', '3']
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], dtype=np.float64), scores, rtol=1e-6)
    assert [p.name for p in path.parent.iterdir()] == ['scores.csv']  # (written to scores.csv.tmp, then renamed)


def test_unknown_note_counts_negative_entries():
    assert unknown_note(np.array([[1, 0], [0, 1]])) is None
    assert unknown_note(np.array([[1, -1], [0, -1]])).startswith('2 of 4 label entries (50.0%)')


def test_describe_names_the_format_classes_and_images():
    val, train = list(range(5)), list(range(12))
    data = SimpleNamespace(train=None, val=val, format='voc', class_names=['a', 'b', 'c'], task='multi-label')
    assert describe(data) == 'data: voc, 3 classes, 5 validation images'
    data = SimpleNamespace(train=train, val=val, format='cifar100', class_names=['a', 'b'], task='single-label')
    assert describe(data) == 'data: cifar100 (single-label), 2 classes, 12 training images, 5 validation images'
