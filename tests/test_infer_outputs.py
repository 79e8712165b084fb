"""infer.py --output (CSV / JSON, streamed, atomic), --thresholds, --top-k, listing files and --save-attention, on a
randomly initialised tresnet_m at 64 px (no training: only the plumbing is tested). The tests that run infer.py
are marked slow (`pytest -m "not slow"` leaves them out, as it does tests/test_scripts.py)."""
import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import infer
from src_files.inference import labelling
from src_files.training.checkpoint import save_best
from src_files.inference.predictions import PredictionWriter, list_images, pick_labels, read_thresholds
from src_files.errors import UserError
from src_files.models import create_model
from src_files.models.config import ModelConfig
from tests.script_calls import assert_user_error, call_main

CLASSES = ['cat', 'dog', 'car', 'sky']
slow = pytest.mark.slow






@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """(best.pth of a random 4-class tresnet_m, a folder of 5 images, one of them in a sub-folder, and a note)."""
    root = tmp_path_factory.mktemp('infer_outputs')
    cfg = ModelConfig(model_name='tresnet_m', num_classes=len(CLASSES), num_of_groups=2, decoder_embedding=64,
                      image_size=64)
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', **{k: v for k, v in cfg.to_dict().items() if k != 'model_name'})
    save_best(str(root / 'best.pth'), model.state_dict(), CLASSES, cfg.to_dict())
    pics = root / 'pics'
    (pics / 'sub').mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ('a.jpg', 'b.png', 'c.jpg', 'd.png', 'sub/e.jpg'):
        Image.fromarray(rng.integers(0, 255, (24 + len(name), 32, 3), dtype=np.uint8)).save(pics / name)
    (pics / 'notes.txt').write_text('not an image')
    return root, pics


def run(setup, capfd, *flags):
    root, pics = setup
    return call_main(infer, ['--model-path', root / 'best.pth', '--pic-path', pics, '--workers', 0,
                             '--batch-size', 8] + list(flags), capfd)


def read_csv(path):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['image', 'labels', 'scores']
    return [(image, labels.split(';') if labels else [], [float(s) for s in scores.split(';')] if scores else [])
            for image, labels, scores in rows[1:]]


@slow
def test_csv_and_json_have_every_image_with_labels_best_first(setup, tmp_path, capfd):
    code, out, err = run(setup, capfd, '--output', tmp_path / 'preds.csv', '--thr', 0.0, '--top-k', 3,
                         '--batch-size', 2)  # (rows written batch by batch)
    assert code == 0, err
    rows = read_csv(tmp_path / 'preds.csv')
    assert [os.path.relpath(r[0], setup[1]) for r in rows] == ['a.jpg', 'b.png', 'c.jpg', 'd.png', 'sub/e.jpg']
    for _, labels, scores in rows:
        assert len(labels) == len(scores) == 3 and set(labels) <= set(CLASSES) and scores == sorted(scores)[::-1]
    assert 'predictions for 5 images written to' in out.splitlines()[-1]
    assert not list(tmp_path.glob('*.tmp')) and 'a.jpg:' not in out  # (a bar, not a line per image)

    code, out, err = run(setup, capfd, '--output', tmp_path / 'preds.json', '--thr', 0.0, '--top-k', 1)
    assert code == 0, err
    records = json.loads((tmp_path / 'preds.json').read_text())
    assert len(records) == 5 and all(len(r['labels']) == len(r['scores']) == 1 for r in records)
    assert [r['labels'] for r in records] == [labels[:1] for _, labels, _ in rows]


@slow
def test_a_listing_file_and_the_printed_lines(setup, tmp_path, capfd):
    _, pics = setup
    listing = pics / 'some.txt'
    listing.write_text('b.png\n\n# a comment\nsub/e.jpg\n')
    code, out, err = run(setup, capfd, '--pic-path', listing, '--thr', 0.0, '--top-k', 2)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith(str(pics))]
    assert [line.split(': ')[0] for line in lines] == [str(pics / 'b.png'), str(pics / 'sub' / 'e.jpg')]
    assert all(line.count('(') == 2 for line in lines)


@slow
def test_per_class_thresholds_and_the_fallback_note(setup, tmp_path, capfd):
    thresholds = tmp_path / 'thresholds.json'
    thresholds.write_text(json.dumps({'cat': 0.0, 'dog': 1.0}))
    code, out, err = run(setup, capfd, '--thresholds', thresholds, '--thr', 0.999, '--output', tmp_path / 'p.csv')
    assert code == 0, err
    assert f'thresholds from {thresholds} for 2 of 4 classes; 2 use --thr 0.999' in out
    rows = read_csv(tmp_path / 'p.csv')
    assert len(rows) == 5 and all('cat' in labels and 'dog' not in labels for _, labels, _ in rows)


@pytest.mark.parametrize('content, fragment', [
    ('{"cat": 0.5', 'is not valid JSON'),
    ('[0.5, 0.5]', 'must hold a JSON object'),
    ('{"cat": 1.5}', "threshold of 'cat' is 1.5"),
    ('{"cat": "high"}', "threshold of 'cat' is \"high\""),
    ('{"cat": true}', "threshold of 'cat' is true"),
    ('{"cat": NaN}', "threshold of 'cat' is NaN"),
    ('{"cat": 0.1, "cat": 0.2}', "'cat' is given twice"),
    ('{"lion": 0.5, "tiger": 0.5}', "names 2 class(es) the model does not have: 'lion', 'tiger'"),
])
def test_bad_thresholds_files(tmp_path, content, fragment):
    path = tmp_path / 'bad.json'
    path.write_text(content)
    with pytest.raises(UserError) as error:
        read_thresholds(str(path), CLASSES, 0.5)
    assert str(path) in str(error.value) and fragment in str(error.value)


@slow
def test_bad_thresholds_and_output_flags_are_one_line(setup, tmp_path, capfd):
    thresholds = tmp_path / 'thresholds.json'
    thresholds.write_text('{"lion": 0.5}')
    code, _, err = run(setup, capfd, '--thresholds', thresholds)
    assert_user_error(code, err, str(thresholds), "'lion'")
    code, _, err = run(setup, capfd, '--thresholds', tmp_path / 'missing.json')
    assert_user_error(code, err, 'missing.json')
    code, _, err = run(setup, capfd, '--output', tmp_path / 'preds.xlsx')
    assert_user_error(code, err, 'preds.xlsx', '.csv or .json')


@slow
def test_unreadable_images_are_skipped_and_counted(setup, tmp_path, capfd):
    _, pics = setup
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    (mixed / 'a.jpg').write_bytes((pics / 'a.jpg').read_bytes())
    (mixed / 'broken.jpg').write_text('not an image')
    code, out, err = run(setup, capfd, '--pic-path', mixed, '--output', tmp_path / 'p.json')
    assert code == 0, err
    assert 'skipped: ' in out and 'broken.jpg' in out
    assert out.splitlines()[-1].endswith('(1 unreadable image(s) skipped)')
    assert [r['image'] for r in json.loads((tmp_path / 'p.json').read_text())] == [str(mixed / 'a.jpg')]
    listing = tmp_path / 'only.txt'
    listing.write_text('mixed/broken.jpg\n')
    code, _, err = run(setup, capfd, '--pic-path', listing, '--output', tmp_path / 'q.csv')
    assert_user_error(code, err, 'broken.jpg')
    assert not os.path.exists(tmp_path / 'q.csv') and not list(tmp_path.glob('*.tmp'))


@slow
def test_an_interrupted_run_leaves_no_file(setup, tmp_path, capfd, monkeypatch):
    calls = []

    def interrupt(*args):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(labelling, 'report_image', lambda *args: interrupt() if calls else calls.append(0))
    code, _, err = run(setup, capfd, '--output', tmp_path / 'preds.csv')
    assert code == 130 and 'interrupted' in err
    assert os.listdir(tmp_path) == []


@slow
def test_save_attention_writes_one_png_per_image(setup, tmp_path, capfd):
    code, out, err = run(setup, capfd, '--save-attention', tmp_path / 'maps', '--thr', 0.0, '--top-k', 2)
    assert code == 0, err
    written = sorted(os.path.relpath(os.path.join(d, n), tmp_path / 'maps')
                     for d, _, names in os.walk(tmp_path / 'maps') for n in names)
    assert written == ['a.jpg.png', 'b.png.png', 'c.jpg.png', 'd.png.png', 'sub/e.jpg.png']
    with Image.open(tmp_path / 'maps' / 'a.jpg.png') as png:
        assert png.format == 'PNG'
    assert 'attention maps of 5 image(s) written to' in out


def test_writer_streams_and_renames_only_at_the_end(tmp_path):
    path = tmp_path / 'p.json'
    with PredictionWriter(path) as writer:
        writer.write('a.jpg', ['cat', 'dog'], np.array([0.9, 0.25], dtype=np.float32))
        assert not path.exists() and os.path.exists(writer.tmp) and writer.tmp.endswith('.tmp')
        writer.write('b, c.jpg', [], [])
    assert json.loads(path.read_text()) == [{'image': 'a.jpg', 'labels': ['cat', 'dog'], 'scores': [0.9, 0.25]},
                                            {'image': 'b, c.jpg', 'labels': [], 'scores': []}]
    with PredictionWriter(tmp_path / 'empty.json'):
        pass
    assert json.loads((tmp_path / 'empty.json').read_text()) == []
    with PredictionWriter(tmp_path / 'p.csv') as writer:
        writer.write('b, c.jpg', ['cat'], [0.5])
    assert read_csv(tmp_path / 'p.csv') == [('b, c.jpg', ['cat'], [0.5])]
    with pytest.raises(RuntimeError), PredictionWriter(tmp_path / 'stopped.csv') as writer:
        writer.write('a.jpg', ['cat'], [0.5])
        raise RuntimeError
    assert sorted(os.listdir(tmp_path)) == ['empty.json', 'p.csv', 'p.json']


def test_pick_labels_applies_each_threshold_then_top_k():
    prob = np.array([0.2, 0.9, 0.6, 0.7], dtype=np.float32)
    thresholds = np.array([0.1, 0.95, 0.5, 0.5], dtype=np.float32)
    assert pick_labels(prob, thresholds, 5).tolist() == [3, 2, 0]  # class 1 scores best but misses its threshold
    assert pick_labels(prob, thresholds, 2).tolist() == [3, 2]


def test_pic_path_folders_and_listings(tmp_path):
    (tmp_path / 'x' / 'deep').mkdir(parents=True)
    for name in ('x/b.JPG', 'x/a.png', 'x/deep/c.webp', 'x/readme.md'):
        (tmp_path / name).write_bytes(b'')
    paths, root = list_images(tmp_path / 'x')
    assert [os.path.relpath(p, root) for p in paths] == ['a.png', 'b.JPG', 'deep/c.webp']
    (tmp_path / 'list.txt').write_text('x/a.png\n\n/abs/z.jpg\n')
    paths, root = list_images(tmp_path / 'list.txt')
    assert paths == [str(tmp_path / 'x' / 'a.png'), '/abs/z.jpg'] and root == str(tmp_path)
    (tmp_path / 'empty.txt').write_text('\n# nothing\n')
    with pytest.raises(UserError, match='names no image'):
        list_images(tmp_path / 'empty.txt')
