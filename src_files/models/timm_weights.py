"""timm's TResNet checkpoints (e.g. `tresnet_m.miil_in21k`) -> this repository's TResNet, in its published key layout.

timm (1.0.x) builds every conv + norm of a TResNet as a `ConvNormAct`: `conv` (bias-free Conv2d), `bn` (BatchNorm
with the activation inside), and `aa` (BlurPool2d anti-aliasing) after the stride-2 ones. Ours are
`nn.Sequential(conv, NormAct2d)`, wrapped once more with the anti-aliasing: `Sequential(Sequential(conv, norm), aa)`.
Same module tree otherwise (`body.conv1`, `body.layerS.B.*`, squeeze-excite `se.fc1` / `se.fc2`, classifier
`head.fc`), so the key renames are (P = `body.layerS.B`):

    timm key                              ours
    body.conv1.conv.weight             -> body.conv1.0.weight                    (stem, after SpaceToDepth)
    body.conv1.bn.*                    -> body.conv1.1.*
    P.convN.conv.weight                -> P.convN.0.weight     or P.convN.0.0.weight   (*)
    P.convN.bn.*                       -> P.convN.1.*          or P.convN.0.1.*        (*)
    P.downsample.I.conv.weight         -> P.downsample.I.0.weight     (I = 1 after the AvgPool2d of stride-2 stages)
    P.downsample.I.bn.*                -> P.downsample.I.1.*
    P.se.fc1.* / P.se.fc2.*            -> unchanged
    head.fc.weight / head.fc.bias      -> unchanged: the classifier (11221 classes for `miil_in21k`, 1000 for the
                                          others), skipped by a fine-tuning load like a published backbone's
    P.convN.aa.filt                    -> dropped if present (a fixed blur filter; both sides now keep it as a
                                          non-persistent buffer, so neither state dict normally has it)
    (*) the nested form for the anti-aliased conv: the first block of stages 2-4, conv1 in a BasicBlock (a block
        without conv3), conv2 in a Bottleneck.

`bn.*` is weight, bias, running_mean, running_var, num_batches_tracked on both sides, same shapes, but the weight
does not mean the same: NormAct2d is InPlaceABN's norm, which scales by |w| + eps, where BatchNorm scales by w
(both eps = 1e-5, same normalisation and bias). timm's own loader turned the InPlaceABN weights into BatchNorm
ones with w_bn = |w| + 1e-5; `bn_to_norm_act` undoes that exactly for |w_bn| >= eps. A negative w_bn (possible
after training in timm) is exact too: the channel's conv filter and running mean change sign, so the norm sees
-x and the output is unchanged. Only |w_bn| < eps (e.g. the zero-initialised last norm of every block of a
never-trained timm model) cannot be represented: it becomes w = 0, scale eps, as our own init has it.

timm's variants: its `tresnet_m` is ours; its `tresnet_v2_l` is our `tresnet_l` (TResNet-L-V2, the one the
ML-Decoder models use); its `tresnet_l` and `tresnet_xl` are TResNet v1 (other depths, widths 1.2 / 1.3) and fit
none of ours; our `tresnet_xl` has no timm weights.
"""
import logging
import re

import torch

from ..errors import UserError

LOG = logging.getLogger(__name__)

EPS = 1e-5  # NormAct2d's and timm's BatchNorm eps, and the 1e-5 of timm's InPlaceABN -> BatchNorm conversion

# timm's TResNet variants by blocks per stage -> our model name (None: no counterpart here).
TIMM_TRESNETS = {
    (3, 4, 11, 3): ('tresnet_m', 'tresnet_m'),
    (3, 4, 23, 3): ('tresnet_v2_l', 'tresnet_l'),
    (4, 5, 18, 3): ('tresnet_l', None),
    (4, 5, 24, 3): ('tresnet_xl', None),
}

NORM_FIELDS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
_FIELD = '(' + '|'.join(NORM_FIELDS) + ')'
# (pattern over a timm key, replacement); the conv / norm of a block are handled by _block_conv.
RENAMES = [
    (r'body\.conv1\.conv\.weight', r'body.conv1.0.weight'),
    (r'body\.conv1\.bn\.' + _FIELD, r'body.conv1.1.\1'),
    (r'(body\.layer\d+\.\d+\.downsample\.\d+)\.conv\.weight', r'\1.0.weight'),
    (r'(body\.layer\d+\.\d+\.downsample\.\d+)\.bn\.' + _FIELD, r'\1.1.\2'),
    (r'(body\.layer\d+\.\d+\.se\.fc[12]\.(?:weight|bias))', r'\1'),
    (r'(head\.fc\.(?:weight|bias))', r'\1'),
]
DROPPED = [r'body\.layer\d+\.\d+\.conv\d\.aa\.filt']
_BLOCK_CONV = re.compile(r'body\.layer(\d+)\.(\d+)\.conv(\d)\.(conv\.weight|bn\.' + _FIELD + ')')


def is_timm_tresnet(state_dict):
    """True for a state dict in timm's TResNet layout (its stem is `body.conv1.conv` + `body.conv1.bn`, where the
    published layout has `body.conv1.0` + `body.conv1.1`)."""
    return 'body.conv1.conv.weight' in state_dict and 'body.conv1.bn.weight' in state_dict


def timm_blocks(state_dict):
    """Blocks per stage of a TResNet state dict (either layout), e.g. (3, 4, 11, 3)."""
    blocks = []
    for stage in range(1, 5):
        prefix = f'body.layer{stage}.'
        indices = {k[len(prefix):].split('.')[0] for k in state_dict if k.startswith(prefix)}
        blocks.append(max((int(i) + 1 for i in indices if i.isdigit()), default=0))
    return tuple(blocks)


def _block_conv(key, state_dict):
    """Our key for timm's `body.layerS.B.convN.conv.weight` / `.bn.*`, or None if `key` is not of that form."""
    m = _BLOCK_CONV.fullmatch(key)
    if not m:
        return None
    stage, block, n, what = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    bottleneck = f'body.layer{stage}.{block}.conv3.conv.weight' in state_dict
    anti_aliased = stage > 1 and block == 0 and n == (2 if bottleneck else 1)
    prefix = f'body.layer{stage}.{block}.conv{n}.' + ('0.' if anti_aliased else '')
    return prefix + ('0.weight' if what == 'conv.weight' else '1.' + what[len('bn.'):])


def timm_key_to_ours(key, state_dict):
    """Our key for a timm TResNet key; '' for a tensor that is dropped; None if it cannot be mapped."""
    if any(re.fullmatch(p, key) for p in DROPPED):
        return ''
    for pattern, replacement in RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    return _block_conv(key, state_dict)


def bn_to_norm_act(conv_weight, bn_weight, running_mean, eps=EPS):
    """(conv weight, norm weight, running mean) of our InPlaceABN-style norm with the outputs of timm's conv +
    BatchNorm (see the module docstring), and the number of channels with |bn weight| < eps (not exact)."""
    dtype = bn_weight.dtype
    w = bn_weight.float()
    sign = torch.where(w < 0, -1.0, 1.0)
    eps_t = torch.tensor(eps, dtype=dtype).float()  # eps as the checkpoint's dtype has it (|w| + 1e-5 was stored so)
    small = w.abs() < eps_t
    weight = torch.where(small, torch.zeros_like(w), w.abs() - eps_t)
    conv, mean = conv_weight, running_mean
    if (w < 0).any():
        conv = (conv_weight.float() * sign.view(-1, *[1] * (conv_weight.dim() - 1))).to(conv_weight.dtype)
        mean = (running_mean.float() * sign).to(running_mean.dtype)
    return conv, weight.to(dtype), mean, int(small.sum())


def from_timm_tresnet(state_dict, model_name='', source='the checkpoint'):
    """Convert a timm TResNet state dict to our TResNet's keys and norm weights.

    model_name: our variant being loaded ('tresnet_m', 'tresnet_l', ...), to stop early with what to use instead
    when the file holds another variant; source: the file, for messages. Raises UserError for a timm variant that
    has no counterpart here, a variant other than model_name, or a key that maps to nothing.
    """
    blocks = timm_blocks(state_dict)
    timm_name, ours = TIMM_TRESNETS.get(blocks, (None, None))
    if timm_name and ours is None:
        raise UserError(f"{source} holds timm's {timm_name} (TResNet v1, {'-'.join(map(str, blocks))} blocks), which "
                        f"fits none of the models here: use timm's tresnet_m.* weights with --model-name tresnet_m, "
                        f"or tresnet_v2_l.* with --model-name tresnet_l")
    if ours and model_name and model_name != ours:
        raise UserError(f"{source} holds timm's {timm_name} weights, which fit {ours}: use --model-name {ours}")

    out, dropped = {}, []
    for key, value in state_dict.items():
        new = timm_key_to_ours(key, state_dict)
        if new is None:
            raise UserError(f"{source}: cannot map the timm TResNet tensor {key} {tuple(value.shape)} to "
                            f"{model_name or 'our TResNet'} (is it a TResNet checkpoint of another kind?)")
        if new:
            out[new] = value
        else:
            dropped.append(key)

    inexact = 0
    for key in state_dict:
        if key.endswith('.bn.weight') and key[:-len('bn.weight')] + 'conv.weight' in state_dict:
            prefix = key[:-len('bn.weight')]
            conv_key, norm_key = timm_key_to_ours(prefix + 'conv.weight', state_dict), timm_key_to_ours(key, state_dict)
            mean_key = norm_key[:-len('weight')] + 'running_mean'
            if mean_key not in out:
                raise UserError(f'{source}: the timm TResNet norm {prefix}bn has no running_mean')
            out[conv_key], out[norm_key], out[mean_key], small = bn_to_norm_act(
                out[conv_key], out[norm_key], out[mean_key])
            inexact += small
    LOG.info(f"note: {source} is a timm TResNet ({timm_name or 'blocks ' + str(blocks)}): converted its "
             f"{len(out)} tensors to this repository's layout" + (f', dropped {", ".join(dropped)}' if dropped else ''))
    if inexact:
        LOG.info(f"note: {inexact} norm channels of {source} have |weight| < {EPS}, which the InPlaceABN-style norm "
                 f"here cannot scale by: they scale by {EPS} (as a zero-initialised norm does here)")
    return out
