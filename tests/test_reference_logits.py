"""Our TResNet + ML-Decoder, filled by the reference rule, must give the published implementation's logits."""
import copy
import json
from pathlib import Path

import pytest
import torch

from reference_rule import reference_input, reference_state_dict, reference_wordvecs, rel_err
from src_files.ml_decoder import set_head_impl, update_wordvecs
from src_files.models import create_model, fold_norm_layers

REF_DIR = Path(__file__).parent / 'reference'
CASES = ['tresnet_m_224_coco80', 'tresnet_m_224_zsl925_eval81']
TOL = {torch.float32: 1e-4, torch.float64: 1e-9}


@pytest.fixture(scope='module', params=CASES)
def case(request):
    ref = json.loads((REF_DIR / f'{request.param}.json').read_text())
    cfg = ref['config']
    model = create_model(model_name=cfg['model_name'], num_classes=cfg['num_classes'],
                         num_of_groups=cfg['num_of_groups'], decoder_embedding=cfg['decoder_embedding'],
                         zsl=cfg['zsl'])
    model.load_state_dict(reference_state_dict(ref['state_dict_layout']), strict=True)
    return ref, model.double().eval()


def _logits(model, ref, dtype):
    cfg = ref['config']
    model = model.to(dtype)
    if cfg['zsl']:
        update_wordvecs(model, test_wordvecs=reference_wordvecs(cfg['n_wordvecs']).T)
    x = reference_input(cfg['batch'], cfg['image_size']).to(dtype)
    with torch.no_grad():
        return model(x)


def test_generator_matches_reference(case):
    ref, _ = case
    check = ref['generator_check']
    cfg = ref['config']
    assert reference_input(cfg['batch'], cfg['image_size']).flatten()[:4].tolist() == pytest.approx(
        check['input_first4'], rel=1e-15)
    sd = reference_state_dict(ref['state_dict_layout'])
    for key, first4 in check['fill_first4'].items():
        assert sd[key].double().flatten()[:4].tolist() == pytest.approx(first4, rel=1e-6)
    if 'wordvecs_first4' in check:
        assert reference_wordvecs(cfg['n_wordvecs']).flatten()[:4].tolist() == pytest.approx(
            check['wordvecs_first4'], rel=1e-15)


def test_state_dict_layout_is_the_published_one(case):
    ref, model = case
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape, _ in ref['state_dict_layout']]


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('impl', ['fast', 'published'])
def test_logits_match_reference(case, dtype, impl):
    ref, model = case
    model = copy.deepcopy(model)
    set_head_impl(model, impl)
    out = _logits(model, ref, dtype)
    assert out.dtype == dtype
    assert list(out.shape) == [len(ref['logits']), len(ref['logits'][0])]
    assert rel_err(out, ref['logits']) < TOL[dtype]


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_folded_norms_give_the_same_logits(case, dtype):
    ref, model = case
    folded = fold_norm_layers(copy.deepcopy(model))
    assert not any(type(m).__name__ == 'NormAct2d' for m in folded.modules())
    assert rel_err(_logits(folded, ref, dtype), ref['logits']) < TOL[dtype]
