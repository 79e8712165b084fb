"""attention_maps: the ML-Decoder's own cross-attention weights, recomputed without changing the head's forward."""
import functools

import pytest
import torch
from torch import nn

from src_files.ml_decoder.attention import attention_maps, class_queries, find_head, save_attention_png
from src_files.ml_decoder.ml_decoder import MLDecoder, set_head_impl
from src_files.models import create_model


@functools.lru_cache(maxsize=None)  # (built once for this module's tests)
def small_model(name, num_classes=10, groups=4):
    torch.manual_seed(0)
    model = create_model(model_name=name, num_classes=num_classes, num_of_groups=groups, decoder_embedding=64,
                         image_size=64)
    return model.eval()


@pytest.mark.parametrize('name, grid', [('tresnet_m', (2, 2)), ('test_resnet', (2, 2)), ('test_vit', (4, 4))])
def test_maps_sum_to_one_and_logits_are_the_models(name, grid):
    """TResNet and a timm CNN (features [N, C, H, W]); a ViT (tokens [N, 1 + 16, C]: the class token dropped)."""
    model = small_model(name)
    images = torch.rand(2, 3, 64, 64)
    logits, weights = attention_maps(model, images)
    with torch.no_grad():
        expected = model(images)
    assert weights.shape == (2, 4) + grid
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    sums = weights.flatten(2).sum(-1)
    if name == 'test_vit':  # the class token's share is left out
        assert (sums <= 1 + 1e-5).all() and (sums > 0).all()
    else:
        torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-5)


def test_maps_are_what_the_published_heads_attention_computes():
    """Under --head-impl published, the head's multihead_attn returns its weights: ours are those numbers."""
    model = small_model('tresnet_m')
    images = torch.rand(2, 3, 64, 64)
    logits_fast, weights_fast = attention_maps(model, images)
    set_head_impl(model, 'published')
    seen = []
    hook = find_head(model).decoder.layers[0].multihead_attn.register_forward_hook(
        lambda module, args, out: seen.append(out[1]))
    try:
        with torch.no_grad():
            logits = model(images)
        hook.remove()
        weights_published = attention_maps(model, images)[1]
    finally:
        hook.remove()
        set_head_impl(model, 'fast')
    assert len(seen) == 1
    torch.testing.assert_close(weights_fast.flatten(2), seen[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(weights_published, weights_fast, rtol=0, atol=0)
    torch.testing.assert_close(logits_fast, logits, rtol=1e-5, atol=1e-5)


def test_a_query_attends_to_a_planted_feature():
    """Identity input projection and query/key projections: the key of one position is the query itself (scaled),
    so that query's map peaks there."""
    torch.manual_seed(0)
    dim = 16
    head = MLDecoder(num_classes=6, num_of_groups=3, decoder_embedding=dim, initial_num_features=dim).eval()
    layer = head.decoder.layers[0]
    with torch.no_grad():
        head.decoder.embed_standart.weight.copy_(torch.eye(dim))
        head.decoder.embed_standart.bias.zero_()
        layer.multihead_attn.in_proj_weight[:2 * dim].copy_(torch.cat([torch.eye(dim), torch.eye(dim)]))
        layer.multihead_attn.in_proj_bias.zero_()
        query = layer.norm1(2 * head.decoder.query_embed.weight[1])  # what the layer projects into q
        features = torch.rand(1, dim, 5, 5) * 0.1
        features[0, :, 2, 3] = 5 * query.clamp(min=0)
    logits, weights = attention_maps(head, features)
    assert weights.shape == (1, 3, 5, 5)
    assert divmod(int(weights[0, 1].argmax()), 5) == (2, 3)
    assert weights[0, 1, 2, 3] > 10 / 25  # ten times the uniform share
    torch.testing.assert_close(logits, head(features), rtol=1e-5, atol=1e-5)


def test_each_class_reads_the_query_its_group_fc_uses():
    """10 classes, 4 groups: 3 classes per query (ceil), the last group holding one: perturbing group g's FC
    weights changes exactly the logits of the classes class_queries maps to g."""
    torch.manual_seed(0)
    head = MLDecoder(num_classes=10, num_of_groups=4, decoder_embedding=16, initial_num_features=8).eval()
    tokens = torch.rand(1, 9, 8)
    base = head(tokens)
    owner = {}
    for g in range(4):
        with torch.no_grad():
            saved = head.decoder.duplicate_pooling[g].clone()
            head.decoder.duplicate_pooling[g] += torch.randn_like(saved)  # (a constant would cancel: h is normed)
            changed = (head(tokens) - base).abs()[0] > 1e-6
            head.decoder.duplicate_pooling[g] = saved
        owner.update({int(c): g for c in changed.nonzero().flatten()})
    assert class_queries(head, range(10)) == [owner[c] for c in range(10)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


def test_eval_mode_and_a_head_are_required():
    head = MLDecoder(num_classes=3, decoder_embedding=16, initial_num_features=8)
    with pytest.raises(ValueError, match='eval mode'):
        attention_maps(head.train(), torch.rand(1, 4, 8))
    with pytest.raises(ValueError, match='one ML-Decoder head'):
        attention_maps(nn.Linear(2, 2).eval(), torch.rand(1, 2))


def test_png_of_an_image_and_its_maps(tmp_path):
    from PIL import Image
    image = Image.new('RGB', (40, 30), (10, 200, 30))
    save_attention_png(str(tmp_path / 'a.png'), image, torch.rand(3, 2, 2), ['cat', 'dog', 'cat'])
    save_attention_png(str(tmp_path / 'none.png'), image, torch.rand(0, 2, 2), [])
    for name in ('a.png', 'none.png'):
        with Image.open(tmp_path / name) as png:
            assert png.format == 'PNG' and png.width > png.height
