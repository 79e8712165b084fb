"""ML-Decoder cross-attention maps: where on the feature map each query looks (infer.py --save-attention).

`attention_maps(model, images)` runs the backbone (the model's own forward, stopped where the head would start),
then recomputes the head's decoder from the head's own modules along the published path: the input projection
+ ReLU, `norm1(q + dropout1(q))` of the queries, the layer's `multihead_attn` with need_weights=True (the
attention averaged over its 8 heads), the feed-forward block and the group FC. Both head implementations
('fast' and 'published') compute these numbers, so the logits it returns are those of model(images) and the
maps are the attention weights behind them. The head's forward is not changed.

In group decoding one query serves duplicate_factor = ceil(num_classes / num_groups) consecutive classes (the
group FC maps query g to classes g*K ... g*K + K - 1): class c reads the map of query c // K.
"""
import math

import torch
import torch.nn.functional as F

from src_files.ml_decoder.ml_decoder import MLDecoder


class _HeadReached(Exception):
    """Stops the model's forward at the head's input (the head itself is recomputed here)."""


def find_head(model):
    """The model's ML-Decoder head (a compiled model's original module is searched)."""
    model = getattr(model, '_orig_mod', model)
    heads = [m for m in model.modules() if isinstance(m, MLDecoder)]
    if len(heads) != 1:
        raise ValueError(f"attention maps need a model with one ML-Decoder head, found {len(heads)} "
                         f"(a --use-ml-decoder 0 model has no attention)")
    return heads[0]


def head_input(model, head, images):
    """What the model's forward hands to its head for `images` (features [N, C, H, W] / [N, H, W, C] or tokens)."""
    captured = []

    def stop(module, inputs):
        captured.append(inputs[0])
        raise _HeadReached

    hook = head.register_forward_pre_hook(stop)
    try:
        model(images)
    except _HeadReached:
        pass
    finally:
        hook.remove()
    if not captured:
        raise RuntimeError("the model's forward did not reach its ML-Decoder head")
    return captured[0]


def _prefix_tokens(length, prefix):
    """How many leading tokens (class / register tokens) precede a square patch grid of `length` tokens."""
    if prefix is None:
        prefix = next((p for p in range(min(length, 9)) if math.isqrt(length - p) ** 2 == length - p), None)
    if prefix is None or math.isqrt(length - prefix) ** 2 != length - prefix:
        raise ValueError(f"cannot lay {length} tokens out on a square patch grid (prefix tokens: {prefix})")
    return prefix


def tokens_and_grid(head, features, prefix=None):
    """(tokens [N, L, C] as the head reads them, (H, W) of the spatial grid, number of leading non-grid tokens)."""
    if features.dim() == 4 and head.input_fmt == 'NHWC':
        return features.flatten(1, 2), tuple(features.shape[1:3]), 0
    if features.dim() == 4:
        return features.flatten(2).transpose(1, 2), tuple(features.shape[2:]), 0
    prefix = _prefix_tokens(features.shape[1], prefix)
    side = math.isqrt(features.shape[1] - prefix)
    return features, (side, side), prefix


def decoder_attention(head, tokens):
    """(logits [N, num_classes], attention weights [N, Q, L]) of the head on `tokens`, along the published path."""
    decoder = head.decoder
    layer = decoder.layers[0]
    memory = F.relu(decoder.embed_standart(tokens)).transpose(0, 1)  # [L, N, D]
    queries = head._queries()
    tgt = queries.unsqueeze(1).expand(-1, tokens.shape[0], -1)  # [Q, N, D]
    tgt = layer.norm1(tgt + layer.dropout1(tgt))
    attended, weights = layer.multihead_attn(tgt, memory, memory, need_weights=True, average_attn_weights=True)
    h = layer._feed_forward(tgt + layer.dropout2(attended)).transpose(0, 1)
    return head._group_fc(h), weights


def attention_maps(model, images, prefix_tokens=None):
    """(logits [N, num_classes], weights [N, Q, H', W']) for `images`; the model must be in eval mode.

    weights[n, q] is query q's cross-attention over the H' x W' feature grid (it sums to 1; for token backbones
    the share of leading class / register tokens is left out). prefix_tokens: how many leading tokens to drop
    (None: the backbone's num_prefix_tokens, else the fewest that leave a square grid).
    """
    if model.training:
        raise ValueError("attention_maps needs the model in eval mode (dropout would change the maps)")
    head = find_head(model)
    if prefix_tokens is None:
        body = getattr(getattr(model, '_orig_mod', model), 'body', None)
        prefix_tokens = getattr(body, 'num_prefix_tokens', None)
    with torch.no_grad():
        features = head_input(model, head, images)
        tokens, grid, prefix = tokens_and_grid(head, features, prefix_tokens)
        logits, weights = decoder_attention(head, tokens)
    return logits, weights[:, :, prefix:].unflatten(-1, grid)


def class_queries(head, classes):
    """The query whose attention decides each class in `classes` (zero-shot: one query per class)."""
    if head.zsl:
        return [int(c) for c in classes]
    return [int(c) // head.duplicate_factor for c in classes]


def save_attention_png(path, image, maps, titles, max_side=256):
    """One PNG: `image` (PIL) beside a grid of heat maps ([M, H', W'], upsampled onto it), each titled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = image.copy()
    shown.thumbnail((max_side, max_side))
    n = len(titles)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(2.2 * (rows + cols), 2.2 * rows), dpi=80)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[rows] + [1] * cols)
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(shown)
    ax.set_title('(no class above the threshold)' if not n else 'image', fontsize=9)
    ax.axis('off')
    if n:
        size = (shown.height, shown.width)
        heat = F.interpolate(maps.float().cpu().unsqueeze(1), size=size, mode='bilinear', align_corners=False)
        for i, title in enumerate(titles):
            ax = fig.add_subplot(grid[i // cols, 1 + i % cols])
            ax.imshow(shown)
            ax.imshow(heat[i, 0].numpy(), cmap='jet', alpha=0.5)
            ax.set_title(title, fontsize=8)
            ax.axis('off')
    fig.savefig(path)
