"""app.py, the labelling page: started on a free port with a trained checkpoint, it labels an image through
gradio_client with infer.py's probabilities, gives the attention maps, answers a corrupt upload with a message (not
an exception), and stops."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

import infer
import train
from src_files.data import demo_coco_root
from tests.script_calls import call_main
from tests.test_scripts import ROOT, SMALL


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_for(port, process, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"app.py ended with {process.returncode}: {process.stdout.read()}")
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"app.py did not serve port {port} within {seconds} s")


@pytest.mark.slow
def test_the_page_labels_as_infer_does_draws_maps_and_names_a_corrupt_upload(tmp_path, capfd):
    from gradio_client import Client, handle_file
    coco = demo_coco_root(cache_dir=str(tmp_path / 'demo'), num_train=24, num_val=8)
    run = tmp_path / 'run'
    code, _, err = call_main(train, ['--data', coco, '--epochs', 1, '--output-dir', run] + SMALL, capfd)
    assert code == 0, err
    image = sorted((tmp_path / 'demo').rglob('val2014/*.jpg'))[0]
    code, _, err = call_main(infer, ['--model-path', run / 'best.pth', '--pic-path', image, '--thr', 0.3,
                                     '--top-k', 20, '--output', tmp_path / 'infer.json'], capfd)
    assert code == 0, err
    expected = json.loads((tmp_path / 'infer.json').read_text())[0]
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED='False', PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--model-path', run / 'best.pth',
                                '--port', str(port), '--device', 'cpu', '--thr', '0.3'], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(port, process)
        client = Client(f'http://127.0.0.1:{port}/', verbose=False)
        bars, maps, table, scores, message = client.predict([handle_file(str(image))], None, 0.3, False,
                                                            api_name='/label')
        got = scores[image.name]
        names = [c['label'] for c in bars['confidences']]
        assert names == expected['labels'] and len(maps) == len(names) > 0, (bars, expected)
        for name, probability in zip(expected['labels'], expected['scores']):
            assert abs(got[name] - probability) < 1e-6
        shown = [(m['image'], m['caption']) if isinstance(m, dict) else tuple(m) for m in maps]
        assert [caption.rsplit(' ', 1)[0] for _, caption in shown] == names  # (one map per label, in order)
        picture = shown[0][0]['path'] if isinstance(shown[0][0], dict) else shown[0][0]
        assert os.path.isfile(picture), shown[0]
        bad = tmp_path / 'broken.jpg'
        bad.write_bytes(b'this is not a JPEG')
        bars, maps, table, scores, message = client.predict([handle_file(str(bad))], None, 0.3, False,
                                                            api_name='/label')
        assert 'cannot read image broken.jpg' in message and not maps and not scores
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode is not None
    # In Python, without a server: the same labels, and tuned per-class thresholds (validate.py --report's file)
    import torch
    from src_files.inference.page import Labeller
    from src_files.models.config import ModelConfig
    from src_files.settings import InferenceSettings
    top = expected['labels'][0]
    (tmp_path / 'thresholds.json').write_text(json.dumps({top: 1.0}))  # (its label, never above 1)
    labeller = Labeller(InferenceSettings(model=ModelConfig(), model_path=str(run / 'best.pth')), torch.device('cpu'),
                        thr=0.3, thresholds_file=str(tmp_path / 'thresholds.json'))
    assert [n for n, _ in labeller.label(str(image))['labels']] == expected['labels']
    assert [n for n, _ in labeller.label(str(image), tuned=True)['labels']] == expected['labels'][1:]
