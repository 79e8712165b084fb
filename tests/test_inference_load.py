"""src_files/inference/load.py: what a checkpoint's settings resolve to (flags given win, else the checkpoint's
record, else its head's shapes), how its outputs are read (--task, else its record, else the data's, else
multi-label), and the frozen Loaded it returns."""
import dataclasses
import logging

import pytest
import torch

from src_files.inference.load import load_model, recorded_task, resolve_task
from src_files.models import create_model
from src_files.models.config import ModelConfig
from src_files.settings import InferenceSettings, SpeedSettings
from src_files.training.checkpoint import save_best

CLASSES = ['cat', 'dog', 'car', 'sky']
CPU = torch.device('cpu')


def test_the_task_comes_from_the_flag_then_the_checkpoint_then_the_data():
    assert resolve_task('auto', {'task': 'single-label'}) == 'single-label'
    assert resolve_task('auto', {'data_format': 'cifar100'}) == 'single-label'  # (a latest.pth's record)
    assert resolve_task('auto', {}, 'single-label') == 'single-label'
    assert resolve_task('auto', {'task': 'multi-label'}, 'single-label') == 'multi-label'
    assert resolve_task('auto', {}) == 'multi-label'
    assert resolve_task('multi-label', {'task': 'single-label'}, 'single-label') == 'multi-label'
    assert recorded_task({'data_format': 'coco'}) is None and recorded_task(None) is None


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A best.pth of a random tresnet_m that records its settings and its task, and the model itself."""
    path = tmp_path_factory.mktemp('load') / 'best.pth'
    cfg = ModelConfig(model_name='tresnet_m', num_classes=len(CLASSES), num_of_groups=2, decoder_embedding=64,
                      image_size=64)
    torch.manual_seed(0)
    model = create_model(cfg).eval()
    save_best(str(path), model.state_dict(), CLASSES, dict(cfg.to_dict(), task='single-label'))
    return str(path), model


def settings(path, given=(), **fields):
    """InferenceSettings as the scripts resolve them: the flags' defaults, with `fields` given on the command line."""
    flags = dict(model_name='tresnet_l', num_classes=None, image_size=448, num_of_groups=-1, decoder_embedding=768)
    flags.update(fields)
    return InferenceSettings(model=ModelConfig(**flags), given=frozenset(given) | frozenset(fields), model_path=path,
                             precision='fp32', speed=SpeedSettings(head_impl='published'))


def test_settings_not_given_come_from_the_checkpoint(checkpoint, caplog):
    caplog.set_level(logging.INFO, logger='src_files')
    path, model = checkpoint
    loaded = load_model(settings(path), CPU)
    assert loaded.config == ModelConfig(model_name='tresnet_m', num_classes=4, num_of_groups=2, decoder_embedding=64,
                                        image_size=64)
    assert loaded.class_names == CLASSES and loaded.task == 'single-label' and loaded.meta['task'] == 'single-label'
    assert loaded.dtype == torch.float32 and not loaded.channels_last and not loaded.model.training
    assert f"settings from {path}: model_name=tresnet_m" in caplog.text
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the norms folded, the same logits
        torch.testing.assert_close(loaded.model(x), model(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.task = 'multi-label'


def test_a_flag_given_wins_and_is_noted(checkpoint, caplog):
    caplog.set_level(logging.INFO, logger='src_files')
    path, _ = checkpoint
    loaded = load_model(dataclasses.replace(settings(path, image_size=96), task='multi-label'), CPU)
    assert loaded.config.image_size == 96 and loaded.config.model_name == 'tresnet_m' and loaded.task == 'multi-label'
    assert f"note: {path} records --image-size 64; using --image-size 96 as given" in caplog.text


@pytest.fixture(scope='module')
def zoo_file(tmp_path_factory):
    """A published-zoo-layout file: a full TResNet-M with an 80-class ML-Decoder head, its weights and class names
    only (no recorded settings), as tresnet_m_COCO_224_84_2.pth is."""
    torch.manual_seed(0)
    model = create_model(model_name='tresnet_m', num_classes=80, image_size=224).eval()
    path = tmp_path_factory.mktemp('zoo') / 'tresnet_m_COCO_224_84_2.pth'
    torch.save({'model': model.state_dict(), 'idx_to_class': {i: f'class{i}' for i in range(80)}}, path)
    return path, model


def test_a_zoo_file_labels_at_the_zoo_size_of_the_backbone_its_weights_show(zoo_file, tmp_path, capfd):
    """No flag but the file and the images: the backbone comes from the weights (tresnet_m, not the default
    tresnet_l), the image size from the zoo's table (224, not the default 448), and both are said."""
    import json
    from PIL import Image
    import infer
    from src_files.helper_functions.augmentations import val_transform
    from tests.script_calls import call_main
    path, model = zoo_file
    rng = torch.Generator().manual_seed(1)
    for i in range(2):
        pixels = (torch.rand(300, 400, 3, generator=rng) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(tmp_path / f'{i}.png')
    code, out, err = call_main(infer, ['--model-path', path, '--pic-path', tmp_path, '--workers', 0, '--thr', 0,
                                       '--top-k', 80, '--output', tmp_path / 'labels.json'], capfd)
    assert code == 0, err
    assert f'model from the weights of {path}: tresnet_m' in out
    assert "image size 224: the model zoo's tresnet_m with 80 classes" in out
    rows = json.loads((tmp_path / 'labels.json').read_text())
    images = torch.stack([val_transform(224)(Image.open(tmp_path / f'{i}.png').convert('RGB')) for i in range(2)])
    with torch.no_grad():  # (an untrained model: its scores move by about 1e-4 from 224 to 448 px)
        expected = torch.sigmoid(model(images))
        at_448 = torch.sigmoid(model(torch.nn.functional.interpolate(images, size=448)))
    got = torch.tensor([[dict(zip(row['labels'], row['scores']))[f'class{c}'] for c in range(80)]
                        for row in sorted(rows, key=lambda r: r['image'])])
    assert (got - expected).abs().max() < 2e-6 < (got - at_448).abs().max()


def test_train_py_fine_tunes_a_zoo_file_with_its_backbone_and_zoo_size(zoo_file, tmp_path, caplog):
    import train
    from src_files.cli import flags, resolve
    path, _ = zoo_file
    values, explicit = flags.parse(train.build_parser(), ['--data', str(tmp_path), '--model-path', str(path),
                                                          '--output-dir', str(tmp_path / 'out')])
    resolve.fine_tune_settings(values, explicit, 'train.py')
    assert values['model_name'] == 'tresnet_m' and values['image_size'] == 224
    values, explicit = flags.parse(train.build_parser(), ['--data', str(tmp_path), '--model-path', str(path),
                                                          '--image-size', '320'])
    with caplog.at_level(logging.INFO):
        resolve.fine_tune_settings(values, explicit, 'train.py')
    assert values['model_name'] == 'tresnet_m' and values['image_size'] == 320  # (given: it wins, with a note)
    assert 'records --image-size 224; using --image-size 320 as given' in caplog.text
