"""create_model and checkpoint loading: round trips, fine-tuning loads, and the errors for bad checkpoints."""
import logging

import pytest
import torch

from src_files.errors import UserError
from src_files.models import create_model, load_checkpoint, load_model_weights
from src_files.models.config import ConfigError


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return create_model(model_name='tresnet_m', num_classes=6, decoder_embedding=64).eval()


def _logits(m, x):
    with torch.no_grad():
        return m.eval()(x)


def perturbed(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


@pytest.mark.parametrize('layout', ['zoo', 'state_dict', 'ddp_without_batches_tracked'])
def test_checkpoint_round_trip(model, tmp_path, layout):
    perturbed(model)
    sd = model.state_dict()
    if layout == 'ddp_without_batches_tracked':  # a DistributedDataParallel bare state dict from an older tool
        sd = {'module.' + k: v for k, v in sd.items() if not k.endswith('num_batches_tracked')}
    obj = {'zoo': {'model': sd, 'idx_to_class': {i: f'c{i}' for i in range(6)}},
           'state_dict': {'state_dict': sd, 'epoch': 3}}.get(layout, sd)
    path = tmp_path / 'ckpt.pth'
    torch.save(obj, path)
    loaded = create_model(model_name='tresnet_m', num_classes=6, decoder_embedding=64, model_path=str(path),
                          load_head=True)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(_logits(loaded, x), _logits(model, x), rtol=0, atol=0)
    _, extras = load_checkpoint(str(path))
    if layout == 'zoo':
        assert extras['idx_to_class'][5] == 'c5'


def test_fine_tuning_load_skips_the_old_classifier(tmp_path):
    torch.manual_seed(1)
    pretrained = create_model(model_name='tresnet_m', num_classes=11, use_ml_decoder=0)  # like a 21K backbone
    path = tmp_path / 'backbone.pth'
    torch.save({'model': pretrained.state_dict()}, path)
    model = create_model(model_name='tresnet_m', num_classes=4, decoder_embedding=64, model_path=str(path))
    ours, theirs = model.state_dict(), pretrained.state_dict()
    body = [k for k in theirs if k.startswith('body.')]
    assert body and all(torch.equal(ours[k], theirs[k]) for k in body)
    assert 'head.fc.weight' not in ours


def test_fine_tuning_from_an_ml_decoder_checkpoint_loads_its_head_and_says_so(model, tmp_path, caplog):
    """As the published fine-tuning (which skipped only head.fc): a head of the same shape is loaded too."""
    path = tmp_path / 'with_head.pth'
    torch.save({'model': model.state_dict()}, path)
    caplog.set_level(logging.INFO, logger='src_files')
    tuned = create_model(model_name='tresnet_m', num_classes=6, decoder_embedding=64, model_path=str(path))
    key = 'head.decoder.duplicate_pooling'
    assert torch.equal(tuned.state_dict()[key], model.state_dict()[key])
    assert "also loading the checkpoint's head" in caplog.text


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match='checkpoint not found: .*nope.pth'):
        create_model(model_name='tresnet_m', num_classes=3, model_path=str(tmp_path / 'nope.pth'))


def test_not_a_checkpoint(tmp_path, capsys):
    for text in ('hello, not weights', 'garbage\n'):  # the second fails as a pickle, in both torch.load modes
        path = tmp_path / 'notes.txt'
        path.write_text(text)
        with pytest.raises(UserError, match='not a readable PyTorch checkpoint .it was not written by torch.save'):
            load_checkpoint(str(path))
        assert 'weights_only=False' not in capsys.readouterr().out  # no note about a load that failed
    # an empty file (torch.load raises an EOFError without a message) and a cut-off copy
    path.write_bytes(b'')
    with pytest.raises(UserError, match='not a readable PyTorch checkpoint .the file is empty'):
        load_checkpoint(str(path))
    torch.save({'w': torch.zeros(1000)}, tmp_path / 'whole.pth')
    path.write_bytes((tmp_path / 'whole.pth').read_bytes()[:2000])
    with pytest.raises(UserError, match='truncated or corrupt'):
        load_checkpoint(str(path))
    torch.save({'epoch': 3, 'lr': 0.1}, tmp_path / 'no_weights.pth')
    with pytest.raises(UserError, match='holds no model weights'):
        load_checkpoint(str(tmp_path / 'no_weights.pth'))


def test_checkpoint_with_a_namespace_loads_safely(tmp_path, capsys):
    """Older checkpoints keep e.g. the argparse Namespace of their run beside the weights: an allowed type, so
    the file loads without a full unpickling (see tests/test_safe_load.py for the files that are refused)."""
    import argparse
    weights = {'body.conv1.0.weight': torch.ones(2, 3, 1, 1)}
    torch.save({'model': weights, 'args': argparse.Namespace(lr=1e-4)}, tmp_path / 'old.pth')
    state_dict, extras = load_checkpoint(str(tmp_path / 'old.pth'))
    assert torch.equal(state_dict['body.conv1.0.weight'], weights['body.conv1.0.weight'])
    assert extras['args'].lr == 1e-4
    assert 'weights_only=False' not in capsys.readouterr().out


def test_checkpoint_of_another_architecture(model, tmp_path):
    other = create_model(model_name='resnet18', num_classes=6, decoder_embedding=64)
    with pytest.raises(UserError, match=r'does not fit tresnet_m: .*missing keys.*unexpected keys'):
        load_model_weights(model, other.state_dict(), strict=True, model_name='tresnet_m')
    with pytest.raises(UserError, match='does not fit tresnet_m'):
        load_model_weights(model, other.state_dict(), strict=False, model_name='tresnet_m')


def test_checkpoint_with_another_class_count(model):
    other = create_model(model_name='tresnet_m', num_classes=9, decoder_embedding=64)
    with pytest.raises(UserError, match='has 9 classes but the model was built for 6'):
        load_model_weights(model, other.state_dict(), strict=True, model_name='tresnet_m')


def test_wrong_head_size_is_named(model):
    other = create_model(model_name='tresnet_m', num_classes=6, decoder_embedding=128)
    with pytest.raises(UserError, match='shape-mismatched keys: head.decoder.*saved with --decoder-embedding 128'):
        load_model_weights(model, other.state_dict(), strict=True, model_name='tresnet_m')
    other = create_model(model_name='tresnet_m', num_classes=6, num_of_groups=3, decoder_embedding=64)
    with pytest.raises(UserError, match='saved with --num-of-groups 3\\)'):
        load_model_weights(model, other.state_dict(), strict=True, model_name='tresnet_m')


def test_bad_head_settings_name_their_fields_and_the_scripts_their_flags():
    """The model code names ModelConfig fields; the scripts print the same message with their flags."""
    for flags in (dict(num_of_groups=0), dict(decoder_embedding=300)):
        with pytest.raises(ConfigError, match='num_of_groups must be positive or -1') as error:
            create_model(model_name='tresnet_m', num_classes=6, **flags)
        assert error.value.as_flags().startswith('--num-of-groups must be positive or -1 (100 groups), and '
                                                 '--decoder-embedding a multiple')


def test_tresnet_image_size_must_be_a_multiple_of_4():
    with pytest.raises(ConfigError, match='multiple of 4'):
        create_model(model_name='tresnet_m', num_classes=3, image_size=226)
    with pytest.raises(ConfigError, match='at least 20'):  # (16 px: a reflect-padding error deep in the model)
        create_model(model_name='tresnet_m', num_classes=3, image_size=16)
    assert create_model(model_name='tresnet_m', num_classes=3, image_size=20).eval()(torch.rand(1, 3, 20, 20)).shape \
        == (1, 3)


def test_unknown_model_name():
    with pytest.raises(UserError, match="unknown model name 'tresnet_q'"):
        create_model(model_name='tresnet_q', num_classes=3)


def test_timm_backbones_with_the_head():
    cnn = create_model(model_name='resnet18', num_classes=5, num_of_groups=2, decoder_embedding=64).eval()
    assert _logits(cnn, torch.rand(2, 3, 64, 64)).shape == (2, 5)
    vit = create_model(model_name='vit_tiny_patch16_224', num_classes=5, decoder_embedding=64, image_size=64)
    assert _logits(vit, torch.rand(2, 3, 64, 64)).shape == (2, 5)
    plain = create_model(model_name='resnet18', num_classes=5, use_ml_decoder=0).eval()
    assert _logits(plain, torch.rand(1, 3, 64, 64)).shape == (1, 5)
    nhwc = create_model(model_name='mambaout_femto', num_classes=5, decoder_embedding=64).eval()  # [N, H, W, C] maps
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out, maps = nhwc(x), nhwc.body.forward_features(x).permute(0, 3, 1, 2)
        nhwc.head.input_fmt = 'NCHW'
        torch.testing.assert_close(out, nhwc.head(maps))


def test_a_timm_model_with_the_head_saved_bare_loads(tmp_path):
    """add_ml_decoder_head on a timm model, saved as it is (keys conv1.*, fc.decoder.*, as the published helper
    made them; also wrapped by torch.compile around DDP), loads into create_model's model with the same logits."""
    timm = pytest.importorskip('timm')
    from src_files.ml_decoder import add_ml_decoder_head
    torch.manual_seed(0)
    bare = perturbed(add_ml_decoder_head(timm.create_model('resnet18', num_classes=10), decoder_embedding=64)).eval()
    for prefix in ('', '_orig_mod.module.'):
        path = tmp_path / 'bare.pth'
        torch.save({'model': {prefix + k: v for k, v in bare.state_dict().items()}}, path)
        ours = create_model(model_name='resnet18', num_classes=10, decoder_embedding=64, model_path=str(path),
                            load_head=True)
        x = torch.rand(2, 3, 64, 64)
        torch.testing.assert_close(_logits(ours, x), _logits(bare, x), rtol=0, atol=0)


def test_a_checkpoint_of_another_tresnet_names_the_variant_it_holds(model):
    from src_files.models.factory import guess_tresnet
    from src_files.models.tresnet import tresnet_l, tresnet_m, tresnet_xl
    with torch.device('meta'):  # only the key names matter: no memory, no initialisation cost
        weights = {name: fn(num_classes=6).state_dict() for name, fn in
                   (('tresnet_m', tresnet_m), ('tresnet_l', tresnet_l), ('tresnet_xl', tresnet_xl))}
    assert {name: guess_tresnet(sd) for name, sd in weights.items()} == {n: n for n in weights}
    assert guess_tresnet({'body.conv1.0.weight': torch.ones(1)}) is None
    with pytest.raises(UserError, match='it holds tresnet_l weights: use --model-name tresnet_l'):
        load_model_weights(model, weights['tresnet_l'], strict=True, model_name='tresnet_m')
