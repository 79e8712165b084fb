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
