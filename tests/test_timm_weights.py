"""timm's pretrained weight files as --model-path: TResNet files converted to our layout (src_files/models/
timm_weights.py), other timm backbones' own files, .safetensors read safely. Nothing is downloaded: every timm model
here is built with pretrained=False and saved to tmp_path."""
import logging

import pytest
import torch

from src_files.errors import UserError
from src_files.models import create_model, load_checkpoint, load_model_weights
from src_files.models.timm_weights import from_timm_tresnet, is_timm_tresnet
from src_files.models.config import ModelConfig

timm = pytest.importorskip('timm')
safetensors_torch = pytest.importorskip('safetensors.torch')


def _trained_like(model):
    """Norm parameters as timm's ported weights have them (|w| + 1e-5 from InPlaceABN; a few negative, as training
    in timm could make them) and non-trivial running statistics, so that every tensor of the mapping matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.randn_like(m.weight).abs() * 0.5 + 1e-5)
                m.weight[:2] *= -1
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model


def _hub_file(tmp_path, repo, name):
    """Where timm's hub cache keeps a file: models--timm--<name>/snapshots/<hash>/<file>."""
    folder = tmp_path / f'models--timm--{repo}' / 'snapshots' / '0123abcd'
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@pytest.fixture(scope='module')
def timm_tresnet_m():
    """A timm tresnet_m (21K-sized classifier, as tresnet_m.miil_in21k) in eval mode, as timm initialises it: the
    last norm of every block at weight 0, which our norm can only approach (scale 1e-5; see
    test_ported_timm_weights_convert_exactly for the exact case)."""
    torch.manual_seed(0)
    return timm.create_model('tresnet_m', pretrained=False, num_classes=11221).eval()


def _save(state_dict, path):
    if path.suffix == '.safetensors':
        safetensors_torch.save_file(state_dict, str(path))
    else:
        torch.save(state_dict, path)
    return str(path)


def _train_config(**kw):
    """The ModelConfig train.py builds the model from."""
    return ModelConfig(**dict(dict(model_name='tresnet_m', num_classes=5, use_ml_decoder=1, num_of_groups=-1,
                                   decoder_embedding=64, zsl=0, image_size=64), **kw))


@pytest.mark.parametrize('file_name', ['model.safetensors', 'pytorch_model.bin'])
def test_timm_tresnet_m_file_is_the_backbone_of_our_tresnet_m(timm_tresnet_m, tmp_path, file_name, caplog):
    """As train.py loads --model-path: our backbone's features equal timm's forward_features; the 21K classifier
    is skipped (with a note) and the ML-Decoder head keeps its random initialisation."""
    path = _save(timm_tresnet_m.state_dict(), _hub_file(tmp_path, 'tresnet_m.miil_in21k', file_name))
    caplog.set_level(logging.INFO, logger='src_files')
    config = _train_config()
    torch.manual_seed(1)
    model = create_model(config, load_head=False, model_path=path).eval()
    torch.manual_seed(1)
    untouched = create_model(config, load_head=False, model_path='')
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model.body(x), timm_tresnet_m.forward_features(x)
    assert ours.shape == (2, 2048, 2, 2)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    head, initial = {k: v for k, v in model.state_dict().items() if k.startswith('head.')}, untouched.state_dict()
    assert head and all(torch.equal(v, initial[k]) for k, v in head.items())
    skipped = next(line for line in caplog.text.splitlines() if 'not loading 2 checkpoint tensors' in line)
    assert 'timm TResNet (tresnet_m)' in caplog.text and 'head.fc.weight' in skipped and 'head.fc.bias' in skipped


def test_ported_timm_weights_convert_exactly(tmp_path):
    """timm's files come from InPlaceABN weights (w_bn = |w| + 1e-5): with those, negative ones included, the
    conversion is exact, and a 1000-class file loads strictly as our plain classifier (validate.py/infer.py)."""
    torch.manual_seed(2)
    theirs = _trained_like(timm.create_model('tresnet_m', pretrained=False)).eval()
    path = _save(theirs.state_dict(), tmp_path / 'model.safetensors')
    ours = create_model(model_name='tresnet_m', num_classes=1000, use_ml_decoder=0, model_path=path,
                        load_head=True).eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


def test_tresnet_l_and_xl_key_sets():
    """Our tresnet_l is timm's tresnet_v2_l (TResNet-L-V2): every tensor maps, with our names and shapes. timm's
    tresnet_l / tresnet_xl (TResNet v1) fit none of ours: one line says what to use."""
    with torch.device('meta'):  # shapes only: no memory, no initialisation
        v2_l = timm.create_model('tresnet_v2_l', pretrained=False).state_dict()
        ours_l = create_model(model_name='tresnet_l', num_classes=1000, use_ml_decoder=0).state_dict()
        v1 = {name: timm.create_model(name, pretrained=False).state_dict() for name in ('tresnet_l', 'tresnet_xl')}
    converted = from_timm_tresnet({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in v2_l.items()}, 'tresnet_l')
    assert {k: (v.shape, v.dtype) for k, v in converted.items()} == \
        {k: (v.shape, v.dtype) for k, v in ours_l.items()}
    for name, sd in v1.items():
        assert is_timm_tresnet(sd)
        with pytest.raises(UserError, match=f"F.pth holds timm's {name} .TResNet v1.*tresnet_v2_l"):
            from_timm_tresnet(sd, 'tresnet_l', 'F.pth')
        with pytest.raises(UserError, match=f"timm's {name}"):
            from_timm_tresnet(sd, 'tresnet_xl', 'F.pth')


def test_a_timm_tresnet_of_another_variant_names_the_model_to_use(timm_tresnet_m, tmp_path):
    path = _save(timm_tresnet_m.state_dict(), tmp_path / 'model.safetensors')
    with pytest.raises(UserError, match=r"model.safetensors holds timm's tresnet_m weights, which fit tresnet_m: "
                                        r"use --model-name tresnet_m"):
        create_model(model_name='tresnet_l', num_classes=5, decoder_embedding=64, model_path=path)


def test_an_unmappable_timm_tresnet_tensor_names_key_and_file(timm_tresnet_m, tmp_path):
    sd = dict(timm_tresnet_m.state_dict(), **{'body.layer1.0.extra.weight': torch.zeros(3)})
    path = _save(sd, tmp_path / 'odd.safetensors')
    with pytest.raises(UserError) as error:
        create_model(model_name='tresnet_m', num_classes=5, decoder_embedding=64, model_path=path)
    message = str(error.value)
    assert 'odd.safetensors' in message and 'body.layer1.0.extra.weight' in message and '\n' not in message


def test_a_persistent_blur_filter_is_dropped(timm_tresnet_m, caplog):
    """Where a timm version saved BlurPool2d's fixed filter (aa.filt), it is dropped: ours is not in the state dict."""
    filt = 'body.layer2.0.conv1.aa.filt'
    caplog.set_level(logging.INFO, logger='src_files')
    converted = from_timm_tresnet(dict(timm_tresnet_m.state_dict(), **{filt: torch.ones(128, 1, 3, 3)}), 'tresnet_m')
    assert not any(k.endswith('filt') for k in converted) and 'body.layer2.0.conv1.0.0.weight' in converted
    assert f'dropped {filt}' in caplog.text


@pytest.mark.parametrize('file_name', ['model.safetensors', 'pytorch_model.bin'])
def test_a_timm_backbone_loads_its_own_timm_file(tmp_path, file_name, caplog):
    """A non-TResNet timm name: its own timm checkpoint (classifier included) is the backbone of our model."""
    torch.manual_seed(3)
    theirs = timm.create_model('resnet10t', pretrained=False).eval()
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
    path = _save(theirs.state_dict(), _hub_file(tmp_path, 'resnet10t.c3_in1k', file_name))
    caplog.set_level(logging.INFO, logger='src_files')
    model = create_model(model_name='resnet10t', num_classes=4, decoder_embedding=64, model_path=path).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.body.forward_features(x), theirs.forward_features(x), rtol=0, atol=0)
    assert 'body.fc.weight' in caplog.text  # the skipped classifier is named


def test_a_timm_model_whose_keys_start_with_body(tmp_path):
    """timm's tresnet_v2_l under its timm name: its keys already start with 'body.', and still go into our
    model's body (body.body.*)."""
    torch.manual_seed(4)
    with torch.device('meta'):
        shapes = timm.create_model('tresnet_v2_l', pretrained=False).state_dict()
    sd = {k: torch.randn(v.shape) if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype)
          for k, v in shapes.items()}
    model = create_model(model_name='tresnet_v2_l', num_classes=4, decoder_embedding=64)
    load_model_weights(model, sd, strict=False, model_name='tresnet_v2_l')
    own = model.state_dict()
    assert all(torch.equal(own['body.' + k], v) for k, v in sd.items() if not k.startswith('head.fc.'))


def test_safetensors_of_a_foreign_layout_is_one_line(tmp_path):
    path = _save({'encoder.layers.0.weight': torch.zeros(4, 4), 'lm_head.weight': torch.zeros(2, 4)},
                 tmp_path / 'model.safetensors')
    with pytest.raises(UserError, match=r'checkpoint .*model.safetensors does not fit tresnet_m: .*missing keys') \
            as error:
        create_model(model_name='tresnet_m', num_classes=5, decoder_embedding=64, model_path=path)
    assert '\n' not in str(error.value)
    torch.manual_seed(5)
    other = _save(timm.create_model('resnet10t', pretrained=False).state_dict(), tmp_path / 'resnet.safetensors')
    with pytest.raises(UserError, match=r'resnet.safetensors does not fit tresnet_m'):
        create_model(model_name='tresnet_m', num_classes=5, decoder_embedding=64, model_path=other)


def test_missing_and_broken_safetensors_files(tmp_path):
    with pytest.raises(UserError, match='checkpoint not found: .*nope.safetensors .*nothing is downloaded'):
        create_model(model_name='tresnet_m', num_classes=3, model_path=str(tmp_path / 'nope.safetensors'))
    whole = _save({'w': torch.zeros(1000)}, tmp_path / 'whole.safetensors')
    cut = tmp_path / 'cut.safetensors'
    cut.write_bytes(open(whole, 'rb').read()[:200])
    with pytest.raises(UserError, match='cut.safetensors is not a readable safetensors file'):
        load_checkpoint(str(cut))
    empty = tmp_path / 'empty.safetensors'
    empty.write_bytes(b'')
    with pytest.raises(UserError, match='empty.safetensors is not a readable safetensors file'):
        load_checkpoint(str(empty))


def test_safetensors_are_read_without_torch_load(tmp_path, monkeypatch):
    """No unpickling: torch.load is never called for a safetensors file, even one named .pth (found by its header)."""
    weights = {'module.body.conv1.0.weight': torch.ones(2, 3, 1, 1)}
    path = _save(weights, tmp_path / 'model.safetensors')
    renamed = tmp_path / 'model.pth'
    renamed.write_bytes(open(path, 'rb').read())

    def refuse(*args, **kwargs):
        raise AssertionError('torch.load called for a safetensors file')
    monkeypatch.setattr(torch, 'load', refuse)
    for p in (path, str(renamed)):
        state_dict, extras = load_checkpoint(p)
        assert list(state_dict) == ['body.conv1.0.weight'] and extras == {}  # 'module.' removed, as for .pth
        assert torch.equal(state_dict['body.conv1.0.weight'], weights['module.body.conv1.0.weight'])
