"""ML-Decoder head: shapes, the batched group FC against an explicit per-group computation, zsl, dtypes."""
import copy

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from src_files.ml_decoder import MLDecoder, add_ml_decoder_head, set_head_impl, update_wordvecs


def explicit_head(head, x):
    """The published forward written out step by step (sequence-first MultiheadAttention, loop over groups)."""
    dec, layer = head.decoder, head.decoder.layers[0]
    tokens = x.flatten(2).transpose(1, 2) if x.dim() == 4 else x
    mem = F.relu(dec.embed_standart(tokens)).transpose(0, 1)             # [L, N, D]
    q = F.relu(head.wordvec_proj(dec.query_embed)) if head.zsl else dec.query_embed.weight
    tgt = q.unsqueeze(1).expand(-1, x.shape[0], -1)                       # [G, N, D]
    tgt = layer.norm1(tgt + tgt)
    tgt = layer.norm2(tgt + layer.multihead_attn(tgt, mem, mem, need_weights=False)[0])
    tgt = layer.norm3(tgt + layer.linear2(F.relu(layer.linear1(tgt))))
    h = tgt.transpose(0, 1)                                               # [N, G, D]
    pool = dec.duplicate_pooling
    cols = []
    for g in range(h.shape[1]):
        cols.append(h[:, g, :] @ (pool if head.zsl else pool[g]))
    out = torch.cat(cols, dim=1)
    if not head.zsl:
        out = out[:, :head.num_classes]
    return out + dec.duplicate_pooling_bias


def randomize(head):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return head


@pytest.mark.parametrize('num_classes,groups,embed,features,hw', [
    (80, -1, 768, 2048, (7, 7)),      # COCO: 80 groups of one class
    (9605, 200, 768, 2048, (2, 2)),   # OpenImages: 200 groups of 49 classes (last group padded)
    (196, 100, 768, 2048, (3, 3)),    # Stanford cars: 2 classes per group, 4 padded columns dropped
    (80, 20, 512, 256, (4, 5)),       # other embedding, non-square map
    (7, -1, -1, 64, (3, 3)),          # fewer classes than the default 100 groups, default embedding
])
def test_head_matches_explicit_math(num_classes, groups, embed, features, hw):
    head = randomize(MLDecoder(num_classes, groups, embed, initial_num_features=features)).double().eval()
    g = min(100 if groups < 0 else groups, num_classes)
    assert head.decoder.query_embed.weight.shape == (g, 768 if embed < 0 else embed)
    assert head.decoder.duplicate_pooling.shape[2] == int(num_classes / g + 0.999)  # the published K
    x = torch.randn(3, features, *hw, dtype=torch.float64)
    ref = explicit_head(head, x)
    for impl in ('fast', 'published'):
        set_head_impl(head, impl)
        out = head(x)
        assert out.shape == (3, num_classes)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_fast_and_published_gradients_agree():
    head = randomize(MLDecoder(30, 7, 64, initial_num_features=32)).double().eval()
    x = torch.randn(2, 32, 3, 3, dtype=torch.float64)
    grads = []
    for impl in ('fast', 'published'):
        set_head_impl(head, impl)
        head.zero_grad()
        head(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert 'decoder.query_embed.weight' not in grads[0]  # queries are frozen, as published
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-9, atol=1e-12)


def test_token_input_and_batch_sizes():
    head = MLDecoder(10, -1, 64, initial_num_features=48).eval()
    for n in (1, 5):
        assert head(torch.randn(n, 197, 48)).shape == (n, 10)   # ViT-style tokens [N, L, C]
        assert head(torch.randn(n, 48, 2, 3)).shape == (n, 10)


def test_train_mode_runs_with_dropout_and_eval_is_deterministic():
    head = MLDecoder(12, 4, 32, initial_num_features=16)
    x = torch.randn(4, 16, 3, 3)
    head.train()
    out = head(x)
    out.sum().backward()
    assert head.decoder.duplicate_pooling.grad is not None
    head.eval()
    torch.testing.assert_close(head(x), head(x))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_close_to_float64(dtype):
    head = MLDecoder(40, 10, 64, initial_num_features=32).eval()
    x = torch.randn(2, 32, 4, 4)
    ref = copy.deepcopy(head).double()(x.double())
    out = head.to(dtype)(x.to(dtype))
    assert out.dtype == dtype
    assert ((out.double() - ref).norm() / ref.norm()).item() < 2e-2


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_logits_are_float32_like_the_published_head(dtype):
    # The published head writes its group FC into a buffer in norm3's dtype (fp32 under autocast) and adds the
    # bias there; the batched head must do the same, not round the logits to fp16/bf16.
    head = randomize(MLDecoder(37, 5, 64, initial_num_features=32)).eval()
    x = torch.randn(3, 32, 4, 4)
    ref = copy.deepcopy(head).double()(x.double())
    errors = {}
    for impl in ('fast', 'published'):
        set_head_impl(head, impl)
        with torch.autocast('cpu', dtype=dtype):
            out = head(x)
        assert out.dtype == torch.float32, impl
        errors[impl] = ((out.double() - ref).norm() / ref.norm()).item()
    assert errors['fast'] < 2 * errors['published'] + 1e-6, errors


def test_zero_shot_head():
    head = randomize(MLDecoder(925, 925, 64, initial_num_features=32, zsl=1)).double().eval()
    sd_keys = set(head.state_dict())
    assert 'wordvec_proj.weight' in sd_keys and 'decoder.query_embed' not in sd_keys
    assert head.decoder.duplicate_pooling.shape == (64, 1)
    x = torch.randn(2, 32, 3, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match='update_wordvecs'):
        head(x)
    wrapper = nn.Module()
    wrapper.head = head
    update_wordvecs(wrapper, train_wordvecs=torch.randn(300, 5))
    assert head.decoder.query_embed.dtype == torch.float64 and head(x).shape == (2, 5)
    update_wordvecs(wrapper, test_wordvecs=torch.randn(300, 81))
    out = head(x)
    assert out.shape == (2, 81)
    torch.testing.assert_close(out, explicit_head(head, x), rtol=1e-10, atol=1e-10)
    assert head.float().decoder.query_embed.dtype == torch.float32  # follows the model's dtype
    with pytest.raises(ValueError, match=r'\[300, n\]'):
        update_wordvecs(wrapper, test_wordvecs=torch.randn(81, 300))


def test_add_ml_decoder_head_on_resnet_style_and_head_style_models():
    class ResNetLike(nn.Module):
        num_features, num_classes = 16, 5

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3)
            self.global_pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            return self.fc(self.global_pool(self.conv(x)))

    model = add_ml_decoder_head(ResNetLike(), num_of_groups=-1, decoder_embedding=32)
    assert isinstance(model.fc, MLDecoder) and model(torch.randn(2, 3, 8, 8)).shape == (2, 5)

    class HeadLike(nn.Module):
        num_features = 16

        def __init__(self):
            super().__init__()
            self.head = nn.Linear(16, 3)

    model = add_ml_decoder_head(HeadLike(), num_classes=9, decoder_embedding=32)
    assert isinstance(model.head, MLDecoder) and model.num_classes == 9
    with pytest.raises(ValueError):
        add_ml_decoder_head(nn.Linear(2, 2), num_classes=3)

    class PoolsInForward(nn.Module):  # torchvision-style: fc but no global_pool to switch off
        num_features = 16

        def __init__(self):
            super().__init__()
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 3)

    with pytest.raises(ValueError, match='unpooled feature map'):
        add_ml_decoder_head(PoolsInForward(), num_classes=3)
    with pytest.raises(ValueError):
        set_head_impl(model, 'loop')


@pytest.mark.parametrize('name,slot,kwargs', [
    ('resnet18', 'fc', {}),                                 # global_pool module + fc
    ('efficientnet_b0', 'classifier', {}),                  # global_pool module + classifier
    ('vit_tiny_patch16_224', 'head', {'img_size': 32}),     # global_pool is a string: '' keeps every token
    ('mambaout_femto', 'head', {}),                         # features [N, H, W, C] (output_fmt 'NHWC')
])
def test_add_ml_decoder_head_on_timm_models_sees_the_whole_feature_map(name, slot, kwargs):
    timm = pytest.importorskip('timm')
    model = timm.create_model(name, pretrained=False, num_classes=7, **kwargs)
    add_ml_decoder_head(model, num_of_groups=3, decoder_embedding=32).eval()
    head = getattr(model, slot)
    assert isinstance(head, MLDecoder) and head.num_classes == 7
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)       # [N, C, H, W] or [N, L, C], unpooled
        torch.testing.assert_close(model(x), head(features))


def test_more_than_1000_groups_still_cover_every_class():
    """K = ceil(n / G): the published int(n / G + 0.999) gave K = 1 for 1002 classes in 1001 groups (1001 logits)."""
    head = MLDecoder(1002, 1001, 64, initial_num_features=16).eval()
    assert head.decoder.duplicate_pooling.shape == (1001, 64, 2)
    with torch.no_grad():
        assert head(torch.randn(1, 16, 2, 2)).shape == (1, 1002)


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_of_groups=0), 'num_of_groups >= 1'),
    (dict(decoder_embedding=300), 'multiple of its 8 attention heads'),  # torch's MultiheadAttention assert
    (dict(input_fmt='NLC'), 'input_fmt'),
])
def test_bad_head_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLDecoder(10, initial_num_features=16, **kwargs)


def test_channels_last_feature_maps():
    """input_fmt='NHWC' (timm's Swin, MambaOut): the same logits as the NCHW map."""
    head = randomize(MLDecoder(12, 4, 64, initial_num_features=32)).eval()
    nhwc = copy.deepcopy(head)
    nhwc.input_fmt = 'NHWC'
    x = torch.randn(2, 32, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(nhwc(x.permute(0, 2, 3, 1)), head(x))


def _dropout_sites(head):
    """name -> setter of the rate for each dropout site of the decoder layer (attention included)."""
    layer = head.decoder.layers[0]
    sites = {name: (lambda p, m=getattr(layer, name): setattr(m, 'p', p))
             for name in ('dropout1', 'dropout2', 'dropout', 'dropout3')}
    sites['attention'] = lambda p: setattr(layer.multihead_attn, 'dropout', p)
    return sites


def test_training_branch_matches_the_published_one_without_dropout():
    """The fast head's training path (per-sample queries, fused attention) against the published path: same
    outputs and the same gradients for every parameter and the input, in float64, dropout off."""
    head = randomize(MLDecoder(10, 4, 16, initial_num_features=24)).double().train()
    for set_rate in _dropout_sites(head).values():
        set_rate(0.0)
    x = torch.randn(3, 24, 2, 3, dtype=torch.float64)
    results = {}
    for impl in ('fast', 'published'):
        set_head_impl(head, impl)
        head.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = head(xi)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results[impl] = [out.detach(), xi.grad] + [p.grad.clone() for p in head.parameters() if p.requires_grad]
    for fast, published in zip(results['fast'], results['published']):
        torch.testing.assert_close(fast, published, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize('site', ['dropout1', 'dropout2', 'dropout', 'dropout3', 'attention'])
def test_each_dropout_site_draws_like_the_published_head(site):
    """One dropout site on (rate 0.5), the others off: over many draws the fast head's outputs have the mean,
    the spread and the independence between images of the published head's (a shared mask across the batch,
    a missing 1 / (1 - p) scaling or a site that drops nothing would show here)."""
    head = randomize(MLDecoder(6, 3, 16, initial_num_features=8)).double().train()
    for name, set_rate in _dropout_sites(head).items():
        set_rate(0.5 if name == site else 0.0)
    x = torch.randn(2, 8, 2, 2, dtype=torch.float64)
    draws = 1500
    stats = {}
    with torch.no_grad():
        for impl in ('fast', 'published'):
            set_head_impl(head, impl)
            torch.manual_seed(1)
            y = torch.stack([head(x) for _ in range(draws)])  # [draws, 2 images, 6 classes]
            dev = y - y.mean(0)
            corr = (dev[:, 0] * dev[:, 1]).mean(0) / (dev[:, 0].std(0) * dev[:, 1].std(0))
            stats[impl] = (y.mean(0), y.std(0), corr)
    (m_f, s_f, c_f), (m_p, s_p, c_p) = stats['fast'], stats['published']
    assert s_p.min() > 1e-3  # the site does drop something
    se = torch.sqrt((s_f ** 2 + s_p ** 2) / draws)
    assert ((m_f - m_p).abs() / se).max() < 5
    assert ((s_f / s_p) - 1).abs().max() < 0.12
    assert (c_f - c_p).abs().max() < 0.15  # both draw each image's mask on its own
