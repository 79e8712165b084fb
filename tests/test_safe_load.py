"""Checkpoint files are read without running code: a file that pickles a function call is refused in one line
naming it, the plain types of published and older checkpoints still load, and --unsafe-load (unsafe=True) reads
a trusted file in full."""
import argparse
import io
import os

import numpy as np
import pytest
import torch

from src_files.data.nus_wide import read_wordvecs
from src_files.training import checkpoint as ckpt
from src_files.errors import UserError
from src_files.inference.load import load_model
from src_files.models import create_model, load_checkpoint
from src_files.models.config import ModelConfig
from src_files.safe_load import torch_load
from src_files.settings import InferenceSettings

WEIGHTS = {'body.conv1.0.weight': torch.ones(2, 3, 1, 1)}


class WritesAMarker:
    """Unpickling it calls exec(...), which creates the file `marker`: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class Note:
    """A harmless custom class: only a full unpickling rebuilds it."""

    def __init__(self, text):
        self.text = text


def save_code_running_checkpoint(path, marker, kind=WritesAMarker):
    torch.save({'model': WEIGHTS, 'payload': kind(marker)}, path)
    return path


@pytest.mark.parametrize('kind, name', [(WritesAMarker, 'exec'), (RunsAShellCommand, 'posix.system')])
def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path, kind, name):
    marker = tmp_path / 'MARKER'
    path = save_code_running_checkpoint(tmp_path / 'evil.pth', marker, kind)
    with pytest.raises(UserError) as error:
        load_checkpoint(str(path))
    message = str(error.value)
    assert '\n' not in message and name in message and message.startswith(f'{path} was not loaded')
    assert message.endswith('only if you trust the file, pass --unsafe-load')
    with pytest.raises(UserError, match='pass --unsafe-load'):
        create_model(model_name='tresnet_m', num_classes=3, model_path=str(path))
    assert not marker.exists()


def test_resume_and_word_vector_files_refuse_code_too(tmp_path):
    marker = tmp_path / 'MARKER'
    path = save_code_running_checkpoint(tmp_path / 'latest.pth', marker)
    with pytest.raises(UserError, match=r'not a readable training checkpoint \(it pickles exec, .*could run code') \
            as error:
        ckpt.load_latest(str(path))
    assert '\n' not in str(error.value)
    with pytest.raises(UserError, match=r'cannot read word vectors from .*it pickles exec, .*swapped') as error:
        read_wordvecs(str(path), 4)
    assert '\n' not in str(error.value) and not marker.exists()


def _old_checkpoint():
    return {'model': WEIGHTS, 'args': argparse.Namespace(lr=1e-4, model_name='tresnet_l'), 'epoch': np.int64(3),
            'mAP': np.float32(86.5), 'best': np.float64(0.5), 'done': np.bool_(True), 'history': np.zeros(3),
            'counts': np.arange(4, dtype=np.int32), 'names': np.array(['cat', 'dog']), 'dtype': np.dtype('float16')}


def _check_old_extras(extras):
    assert extras['args'].lr == 1e-4 and extras['epoch'] == 3 and extras['mAP'] == np.float32(86.5)
    assert extras['done'] and extras['history'].shape == (3,) and list(extras['counts']) == [0, 1, 2, 3]
    assert list(extras['names']) == ['cat', 'dog'] and extras['dtype'] == np.float16


def test_namespace_and_numpy_values_load_without_the_flag(tmp_path, capsys):
    """Older checkpoints keep the argparse Namespace of their run and numpy numbers beside the weights."""
    torch.save(_old_checkpoint(), tmp_path / 'old.pth')
    state_dict, extras = load_checkpoint(str(tmp_path / 'old.pth'))
    assert torch.equal(state_dict['body.conv1.0.weight'], WEIGHTS['body.conv1.0.weight'])
    _check_old_extras(extras)
    assert 'weights_only' not in capsys.readouterr().out


def test_numpy_1_module_names_load(tmp_path):
    """numpy 1 pickled its scalars and arrays as numpy.core.multiarray.*; numpy 2 as numpy._core.multiarray.*.
    (Written in torch's legacy format, whose pickle can be edited in place.)"""
    buffer = io.BytesIO()
    torch.save(_old_checkpoint(), buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    current = np.float64(0).__reduce__()[0].__module__.encode()  # numpy._core.multiarray on numpy 2
    old = data.replace(current, b'numpy.core.multiarray')
    assert b'numpy.core.multiarray\nscalar' in old and b'numpy.core.multiarray\n_reconstruct' in old
    (tmp_path / 'numpy1.pth').write_bytes(old)
    _, extras = load_checkpoint(str(tmp_path / 'numpy1.pth'))
    _check_old_extras(extras)


def test_unsafe_load_reads_a_trusted_file(tmp_path):
    model = create_model(model_name='tresnet_m', num_classes=3, decoder_embedding=64)
    path = tmp_path / 'trusted.pth'
    torch.save({'model': model.state_dict(), 'note': Note('from a trusted run')}, path)
    with pytest.raises(UserError, match=r'it pickles [\w.]*Note, .*only if you trust the file, pass --unsafe-load'):
        load_checkpoint(str(path))
    _, extras = load_checkpoint(str(path), unsafe=True)
    assert extras['note'].text == 'from a trusted run'
    # create_model takes the flag as a keyword, with a ModelConfig or the config's fields
    config = ModelConfig(model_name='tresnet_m', num_classes=3, decoder_embedding=64)
    loaded = create_model(config, load_head=True, model_path=str(path), unsafe_load=True)
    assert torch.equal(loaded.state_dict()['head.decoder.duplicate_pooling'],
                       model.state_dict()['head.decoder.duplicate_pooling'])
    create_model(model_name='tresnet_m', num_classes=3, decoder_embedding=64, model_path=str(path), unsafe_load=True)
    # validate.py / infer.py / export.py: InferenceSettings.unsafe_load (--unsafe-load); the head's settings and the
    # class count come from the file's tensors
    flags = ModelConfig(model_name='tresnet_m', num_classes=None, image_size=64)
    with pytest.raises(UserError, match='pass --unsafe-load'):
        load_model(InferenceSettings(model=flags, model_path=str(path)), torch.device('cpu'))
    scored = load_model(InferenceSettings(model=flags, model_path=str(path), unsafe_load=True, fold_norms=False),
                        torch.device('cpu'))
    assert (scored.config.num_classes, scored.config.decoder_embedding, scored.class_names) == (3, 64, ['0', '1', '2'])
    assert torch.equal(scored.model.state_dict()['head.decoder.duplicate_pooling'],
                       model.state_dict()['head.decoder.duplicate_pooling'])


def test_every_file_the_project_writes_loads_safely(tmp_path):
    """best.pth (save_best) and latest.pth (atomic_save of the training state: optimizer, OneCycle scheduler,
    RNG states, run settings, history) load with no unpickling beyond the allowed types."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10, pct_start=0.2)
    model(torch.rand(2, 3, 4, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    scaler = torch.amp.GradScaler('cpu', enabled=True)
    state = {'model': ckpt.cpu_state_dict(model), 'ema': ckpt.cpu_state_dict(model),
             'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict(),
             'epoch': 1, 'global_step': 5, 'rng': ckpt.rng_state(), 'best': 12.5, 'class_names': ['a', 'b'],
             'args': {'lr': 1e-3, 'model_name': 'tresnet_m', 'num_classes': None, 'no_aug': True},
             'history': [{'epoch': 1, 'loss': 3.0, 'mAP': 12.5}]}
    ckpt.atomic_save(state, str(tmp_path / ckpt.LATEST))
    loaded = ckpt.load_latest(str(tmp_path / ckpt.LATEST))
    assert loaded['scheduler'] == scheduler.state_dict() and loaded['history'] == state['history']
    ckpt.set_rng_state(loaded['rng'])
    ckpt.save_best(str(tmp_path / ckpt.BEST), ckpt.cpu_state_dict(model), ['a', 'b', 'c', 'd'],
                   {'model_name': 'tresnet_m', 'image_size': 64, 'mAP': 12.5, 'epoch': 1})
    state_dict, extras = load_checkpoint(str(tmp_path / ckpt.BEST))
    assert set(state_dict) == set(model.state_dict()) and extras['idx_to_class'][3] == 'd'
    assert torch_load(str(tmp_path / ckpt.BEST))['meta']['image_size'] == 64
