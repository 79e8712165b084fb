"""ML-Decoder: an attention-based classification head (Ridnik et al., 2021).

Self-contained on purpose (imports only torch): copy this file into your own project to put the head on any
backbone. Parameter names and shapes match the published checkpoints (`head.decoder.*`).

A fixed set of G queries attends to the backbone's spatial tokens through one transformer-decoder layer
(cross-attention and a feed-forward block, no self-attention); a group fully-connected layer then turns each
query's output into K = ceil(num_classes / G) class logits. In zero-shot mode (zsl=1) the queries are
projected word vectors of the classes being scored, and one shared vector turns each query into one logit.

Two implementations give the same numbers:
- 'fast' (default): the group FC is one batched matmul and attention runs through
  `scaled_dot_product_attention`; in eval mode the query branch is computed once for the whole batch.
- 'published': the published per-group Python loop and torch's MultiheadAttention module (for benchmarks).
"""
import torch
from torch import nn
import torch.nn.functional as F

HEAD_IMPLS = ('fast', 'published')


class TransformerDecoderLayerOptimal(nn.Module):
    """The published decoder layer: cross-attention + feed-forward, post-norm, no self-attention.

    Note the first step, `norm1(t + dropout(t))`: the published layer adds the queries to themselves where a
    standard layer would apply self-attention. The checkpoints were trained with it, so it stays.
    """

    def __init__(self, d_model, nhead=8, dim_feedforward=2048, dropout=0.1, layer_norm_eps=1e-5):
        super().__init__()
        # Registration order fixes the state-dict order of the published checkpoints.
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)

    def _feed_forward(self, t):
        t = self.norm2(t)
        t2 = self.linear2(self.dropout(F.relu(self.linear1(t))))
        return self.norm3(t + self.dropout3(t2))

    def forward_published(self, tgt, memory):
        """tgt [G, N, D], memory [L, N, D] (sequence first, as torch's decoder containers use)."""
        tgt = self.norm1(tgt + self.dropout1(tgt))
        tgt2 = self.multihead_attn(tgt, memory, memory)[0]
        return self._feed_forward(tgt + self.dropout2(tgt2))

    def forward(self, queries, memory):
        """queries [G, D] (shared by the batch), memory [N, L, D] -> [N, G, D]."""
        n = memory.shape[0]
        if self.training and self.dropout1.p > 0:
            # Dropout draws a separate mask per sample, so the query branch is per sample while training.
            t = queries.unsqueeze(0).expand(n, -1, -1)
            t = self.norm1(t + self.dropout1(t))
        else:
            t = self.norm1(queries + queries).unsqueeze(0)  # identical for every sample: compute once
        attn = self.multihead_attn
        d = t.shape[-1]
        heads = attn.num_heads
        w_q, w_kv = attn.in_proj_weight[:d], attn.in_proj_weight[d:]
        b_q, b_kv = attn.in_proj_bias[:d], attn.in_proj_bias[d:]
        q = F.linear(t, w_q, b_q)
        k, v = F.linear(memory, w_kv, b_kv).chunk(2, dim=-1)
        q = q.unflatten(-1, (heads, d // heads)).transpose(1, 2).expand(n, -1, -1, -1)
        k = k.unflatten(-1, (heads, d // heads)).transpose(1, 2)
        v = v.unflatten(-1, (heads, d // heads)).transpose(1, 2)
        drop = attn.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        o = attn.out_proj(o.transpose(1, 2).flatten(2))
        return self._feed_forward(t + self.dropout2(o))


class _DecoderStack(nn.Module):
    """Holds what the published code hung on torch's TransformerDecoder, so keys read `decoder.*`."""

    def __init__(self, layer):
        super().__init__()
        self.layers = nn.ModuleList([layer])


class MLDecoder(nn.Module):
    """`input_fmt` says how a 4-d input is laid out: 'NCHW' (CNN feature maps) or 'NHWC' (e.g. timm's Swin);
    3-d inputs are tokens [N, L, C]."""

    def __init__(self, num_classes, num_of_groups=-1, decoder_embedding=768, initial_num_features=2048, zsl=0,
                 input_fmt='NCHW', query_dim=300):
        super().__init__()
        num_groups = 100 if num_of_groups < 0 else num_of_groups
        num_groups = min(num_groups, num_classes)
        embed_dim = 768 if decoder_embedding < 0 else decoder_embedding
        if num_classes < 1 or num_groups < 1:
            raise ValueError(f'MLDecoder needs num_classes >= 1 and num_of_groups >= 1 (or -1 for 100), got '
                             f'{num_classes} and {num_of_groups}')
        if embed_dim % 8:
            raise ValueError(f'MLDecoder: decoder_embedding must be a multiple of its 8 attention heads, got '
                             f'{decoder_embedding}')
        if input_fmt not in ('NCHW', 'NHWC'):
            raise ValueError(f"MLDecoder: input_fmt must be 'NCHW' or 'NHWC', got {input_fmt!r}")
        self.num_classes = num_classes
        self.num_groups = num_groups
        self.zsl = bool(zsl)
        self.input_fmt = input_fmt
        self.impl = 'fast'

        # Created in the published order (the input projection, the queries, then the layer), so that a seed draws
        # the published initial weights; registered in the published state-dict order below.
        embed_standart = nn.Linear(initial_num_features, embed_dim)
        query_embed = None if self.zsl else nn.Embedding(num_groups, embed_dim)
        decoder = _DecoderStack(TransformerDecoderLayerOptimal(embed_dim, nhead=8, dim_feedforward=2048,
                                                               dropout=0.1))
        decoder.embed_standart = embed_standart
        self.decoder = decoder
        if self.zsl:
            # Queries come from the word vectors (or text embeddings, `query_dim` wide: 300 as published) of the
            # classes being scored ([n, query_dim]); set at run time by update_wordvecs. A non-persistent buffer
            # follows .to()/.half() and stays out of the state dict. (As published, no projection when the widths
            # are equal.)
            decoder.register_buffer('query_embed', None, persistent=False)
            self.query_dim = query_dim
            self.wordvec_proj = nn.Linear(query_dim, embed_dim) if embed_dim != query_dim else nn.Identity()
            decoder.duplicate_pooling = nn.Parameter(torch.empty(embed_dim, 1))
            decoder.duplicate_pooling_bias = nn.Parameter(torch.empty(1))
            self.duplicate_factor = 1
        else:
            decoder.query_embed = query_embed
            decoder.query_embed.requires_grad_(False)  # the published queries are fixed, not learned
            self.duplicate_factor = -(-num_classes // num_groups)  # ceil; published int(n / G + 0.999) fell
            # short when G > 1000 and n / G was just over an integer (equal wherever that worked)
            decoder.duplicate_pooling = nn.Parameter(torch.empty(num_groups, embed_dim, self.duplicate_factor))
            decoder.duplicate_pooling_bias = nn.Parameter(torch.empty(num_classes))
        nn.init.xavier_normal_(decoder.duplicate_pooling)
        nn.init.constant_(decoder.duplicate_pooling_bias, 0)

    def _queries(self):
        if not self.zsl:
            return self.decoder.query_embed.weight
        wordvecs = self.decoder.query_embed
        if wordvecs is None:
            raise RuntimeError('zero-shot ML-Decoder has no word vectors: call update_wordvecs(model, ...) first')
        return F.relu(self.wordvec_proj(wordvecs))

    def _group_fc(self, h):
        """h [N, G, D] -> logits [N, num_classes]."""
        pool = self.decoder.duplicate_pooling
        if self.impl == 'published':
            out = torch.zeros(h.shape[0], h.shape[1], self.duplicate_factor, device=h.device, dtype=h.dtype)
            for i in range(h.shape[1]):
                w = pool if self.zsl else pool[i]
                out[:, i, :] = h[:, i, :] @ w.to(h.dtype)
        elif self.zsl:
            out = h @ pool.to(h.dtype)
        else:
            out = torch.bmm(h.transpose(0, 1), pool.to(h.dtype)).transpose(0, 1)  # one matmul per group, batched
        # Under autocast the products come out in fp16/bf16 while h (after norm3) is fp32: like the published
        # fp32 buffer, the logits and the bias addition are in h's dtype.
        out = out.flatten(1).to(h.dtype)
        if not self.zsl:
            out = out[:, :self.num_classes]
        return out + self.decoder.duplicate_pooling_bias.to(out.dtype)

    def forward(self, x):
        if x.dim() == 4:  # [N, C, H, W] (or [N, H, W, C]) -> tokens [N, HW, C]
            x = x.flatten(1, 2) if self.input_fmt == 'NHWC' else x.flatten(2).transpose(1, 2)
        tokens = x
        memory = F.relu(self.decoder.embed_standart(tokens))
        queries = self._queries()
        layer = self.decoder.layers[0]
        if self.impl == 'published':
            tgt = queries.unsqueeze(1).expand(-1, memory.shape[0], -1)
            h = layer.forward_published(tgt, memory.transpose(0, 1)).transpose(0, 1)
        else:
            h = layer(queries, memory)  # fp32 queries under autocast, as published (norm1 runs in fp32)
        return self._group_fc(h)


def _ml_decoders(model):
    return [m for m in model.modules() if isinstance(m, MLDecoder)]


def set_head_impl(model, impl):
    """Choose 'fast' or 'published' for every ML-Decoder head in `model` (same numbers, different speed)."""
    if impl not in HEAD_IMPLS:
        raise ValueError(f'head impl must be one of {HEAD_IMPLS}, got {impl!r}')
    for head in _ml_decoders(model):
        head.impl = impl
    return model


def update_wordvecs(model, train_wordvecs=None, test_wordvecs=None):
    """Set the word vectors ([300, n], as in `wordvec_array.pth`; [query_dim, n] for a head of another width) that a
    zero-shot head scores.

    Like the published helper: the train vectors if given, else the test vectors. They are stored transposed
    ([n, 300]) on the head, on the device and in the dtype of the head's parameters.
    """
    wordvecs = train_wordvecs if train_wordvecs is not None else test_wordvecs
    if wordvecs is None:
        raise ValueError('update_wordvecs needs train_wordvecs or test_wordvecs')
    heads = [h for h in _ml_decoders(model) if h.zsl]
    if not heads:
        raise ValueError('update_wordvecs: the model has no zero-shot ML-Decoder head (zsl=1)')
    for head in heads:
        if wordvecs.dim() != 2 or wordvecs.shape[0] != head.query_dim:
            raise ValueError(f'word vectors must be [{head.query_dim}, n], got {list(wordvecs.shape)}')
        ref = head.decoder.duplicate_pooling
        head.decoder.query_embed = wordvecs.t().to(device=ref.device, dtype=ref.dtype).contiguous()
    return model


def feature_format(model):
    """'NHWC' for models whose feature maps are channels-last tensors (timm's `output_fmt`, e.g. Swin), else 'NCHW'."""
    return 'NHWC' if getattr(model, 'output_fmt', 'NCHW') == 'NHWC' else 'NCHW'


def add_ml_decoder_head(model, num_classes=-1, num_of_groups=-1, decoder_embedding=768, zsl=0, query_dim=300):
    """Replace a model's classifier by an ML-Decoder, as the published helper did, for timm-style models.

    The classifier slot is `fc` (ResNets) or `classifier` (EfficientNets) beside a `global_pool`, or `head`
    (TResNet, ViTs, ConvNeXts). `global_pool`, if the model has one, stops pooling so that the head sees the whole
    feature map: it becomes an identity, or '' where it is a pool-type string (timm ViTs: every token reaches the
    head). The model must expose `num_features` (and `num_classes` when num_classes is -1).
    """
    pooled_by_forward = not hasattr(model, 'global_pool')  # e.g. torchvision's ResNets pool inside forward
    slots = ('head',) if pooled_by_forward else ('fc', 'classifier', 'head')
    slot = next((name for name in slots if isinstance(getattr(model, name, None), nn.Module)), None)
    if slot is None:
        raise ValueError('add_ml_decoder_head: the model has no global_pool + fc/classifier, nor a head module, to '
                         'replace; build MLDecoder(num_classes, initial_num_features=...) and call it on the '
                         'unpooled feature map yourself')
    if num_classes == -1:
        num_classes = model.num_classes
    head = MLDecoder(num_classes=num_classes, num_of_groups=num_of_groups, decoder_embedding=decoder_embedding,
                     initial_num_features=model.num_features, zsl=zsl, input_fmt=feature_format(model),
                     query_dim=query_dim)
    if isinstance(getattr(model, 'global_pool', None), str):
        model.global_pool = ''
    elif hasattr(model, 'global_pool'):
        model.global_pool = nn.Identity()
    delattr(model, slot)
    setattr(model, slot, head)
    model.num_classes = num_classes
    return model
