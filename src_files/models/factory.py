"""Model names -> backbones with their head, and checkpoint loading. Never downloads anything."""
import dataclasses
import logging
import os

import torch
import timm
from torch import nn

from ..checksum import verify_checksum
from ..errors import UserError, refused_global, why_torch_load_failed
from ..ml_decoder.ml_decoder import MLDecoder, add_ml_decoder_head, feature_format
from ..safe_load import is_safetensors, load_safetensors, torch_load
from .config import ModelConfig
from .timm_weights import from_timm_tresnet, is_timm_tresnet
from .tresnet import TRESNET_LAYERS, TResNet, tresnet_l, tresnet_m, tresnet_xl

LOG = logging.getLogger(__name__)

TRESNETS = {'tresnet_m': tresnet_m, 'tresnet_l': tresnet_l, 'tresnet_xl': tresnet_xl}

class TimmWithMLDecoder(nn.Module):
    """Any timm backbone (features [N, C, H, W], [N, H, W, C] or tokens [N, L, C]) followed by an ML-Decoder head."""

    def __init__(self, body: nn.Module, head: MLDecoder):
        super().__init__()
        self.body = body
        self.head = head
        self.num_features = body.num_features
        self.num_classes = head.num_classes

    def forward(self, x):
        return self.head(self.body.forward_features(x))


def _timm_backbone(name, image_size, drop_path_rate=0.0, **kwargs):
    if not timm.is_model(name):
        raise UserError(f"unknown model name '{name}': use one of {', '.join(TRESNETS)} or a timm model name "
                        "(see timm.list_models())")
    if drop_path_rate:
        try:
            return _timm_create(timm, name, image_size, drop_path_rate=drop_path_rate, **kwargs)
        except TypeError:
            LOG.info(f"note: {name} takes no drop_path_rate: it trains without drop path")
    return _timm_create(timm, name, image_size, **kwargs)


def _timm_create(timm, name, image_size, **kwargs):
    if image_size:
        try:
            return timm.create_model(name, pretrained=False, img_size=image_size, **kwargs)
        except TypeError:  # CNNs take any size and have no img_size argument
            pass
    return timm.create_model(name, pretrained=False, **kwargs)


def create_model(config=None, load_head=False, model_path='', unsafe_load=False, drop_path_rate=0.0, **fields):
    """Build a model from a ModelConfig, attach an ML-Decoder head and load `model_path` if one is given.

    `fields` (model_name=..., num_classes=..., ...) fill in or override the config's fields.
    load_head=False loads a pretrained backbone non-strictly (skipping the old classifier `head.fc`), like the
    published fine-tuning; load_head=True loads the whole model strictly. `unsafe_load`: unpickle the file in full
    (see src_files/safe_load.py). `drop_path_rate`: the stochastic-depth rate of a timm backbone that takes one
    (train.py --recipe a2).
    """
    cfg = dataclasses.replace(config or ModelConfig(), **fields)  # cfg.check() below: ConfigError if impossible
    name = cfg.model_name.lower()
    num_classes = int(cfg.num_classes)

    cfg.check()
    if name in TRESNETS:
        model = TRESNETS[name](num_classes=num_classes)
        if cfg.use_ml_decoder:
            add_ml_decoder_head(model, num_classes=num_classes, num_of_groups=cfg.num_of_groups,
                                decoder_embedding=cfg.decoder_embedding, zsl=cfg.zsl, query_dim=cfg.query_dim)
    elif cfg.use_ml_decoder:
        body = _timm_backbone(name, cfg.image_size, drop_path_rate or 0.0, num_classes=0,
                              global_pool='')
        head = MLDecoder(num_classes, num_of_groups=cfg.num_of_groups, decoder_embedding=cfg.decoder_embedding,
                         initial_num_features=body.num_features, zsl=cfg.zsl, input_fmt=feature_format(body),
                         query_dim=cfg.query_dim)
        model = TimmWithMLDecoder(body, head)
    else:
        model = _timm_backbone(name, cfg.image_size, drop_path_rate or 0.0, num_classes=num_classes)
    model.num_classes = num_classes

    if model_path:
        state_dict, _ = load_checkpoint(model_path, unsafe=bool(unsafe_load))
        load_model_weights(model, state_dict, strict=load_head, model_name=name, source=model_path)
    return model


def load_checkpoint(path, map_location='cpu', unsafe=False):
    """Read a checkpoint file -> (state_dict, extras).

    Accepts a bare state dict or one stored under 'model' or 'state_dict' (model-zoo files, our training
    runs); `extras` holds the file's other entries (e.g. 'idx_to_class'). Nothing in the file runs: it is
    read with torch.load(weights_only=True), allowing the plain types of src_files/safe_load.py; a file
    that pickles anything else is refused unless unsafe=True (--unsafe-load, for trusted files only).
    A .safetensors file (timm's hub files) is read with the safetensors package: tensors only, extras empty.
    """
    if not path or not os.path.isfile(path):
        raise UserError(f'checkpoint not found: {path} (give a local path with --model-path; nothing is downloaded)')
    if str(path).endswith('.safetensors') or is_safetensors(path):
        try:
            state_dict = load_safetensors(path, map_location=map_location)
        except Exception as e:
            first = (str(e).strip().splitlines() or [''])[0][:200]
            raise UserError(f'{path} is not a readable safetensors file ({type(e).__name__}: {first})') from None
        if not state_dict:
            raise UserError(f'{path} holds no model weights: the safetensors file has no tensors')
        return _strip_wrappers(state_dict), {}
    try:
        obj = torch_load(path, map_location=map_location, unsafe=unsafe)
    except Exception as e:
        reason = why_torch_load_failed(path, e)
        if refused_global(e):
            raise UserError(f'{path} was not loaded: {reason}; only if you trust the file, pass --unsafe-load') \
                from None
        raise UserError(f'{path} is not a readable PyTorch checkpoint ({reason})') from None
    verify_checksum(obj, path)  # (files of this project record one; others load as they are)
    extras = {}
    if isinstance(obj, dict) and isinstance(obj.get('model'), dict):
        state_dict, extras = obj['model'], {k: v for k, v in obj.items() if k != 'model'}
    elif isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        state_dict, extras = obj['state_dict'], {k: v for k, v in obj.items() if k != 'state_dict'}
    else:
        state_dict = obj
    if not isinstance(state_dict, dict) or not state_dict or \
            not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise UserError(f'{path} holds no model weights: expected a state dict, or one under "model" or "state_dict"')
    return _strip_wrappers(state_dict), extras


def _strip_wrappers(state_dict):
    """Drop the key prefixes that DistributedDataParallel ('module.') and torch.compile ('_orig_mod.') add."""
    out = {}
    for k, v in state_dict.items():
        while k.startswith(('module.', '_orig_mod.')):  # both, in either order: torch.compile(DDP(model))
            k = k.split('.', 1)[1]
        out[k] = v
    return out


def _class_count(state_dict):
    for key in ('head.decoder.duplicate_pooling_bias', 'fc.decoder.duplicate_pooling_bias', 'head.fc.bias'):
        if key in state_dict and state_dict[key].numel() > 1:
            return state_dict[key].numel()
    return None


def guess_tresnet(state_dict):
    """'tresnet_m', 'tresnet_l' or 'tresnet_xl' if the state dict's blocks per stage are those of one, else None."""
    blocks = []
    for stage in range(1, 5):
        prefix = f'body.layer{stage}.'
        indices = {k[len(prefix):].split('.')[0] for k in state_dict if k.startswith(prefix)}
        blocks.append(max((int(i) + 1 for i in indices if i.isdigit()), default=0))
    return next((name for name, layers in TRESNET_LAYERS.items() if tuple(layers) == tuple(blocks)), None)


def _as_body_and_head(state_dict, own):
    """Keys of a bare timm model (`conv1.*`, and `fc.decoder.*` if add_ml_decoder_head gave it an ML-Decoder) ->
    TimmWithMLDecoder's `body.*` and `head.*`."""
    out = {}
    for k, v in state_dict.items():
        slot, _, rest = k.partition('.')
        is_ml_decoder = slot in ('fc', 'classifier', 'head') and rest.startswith(('decoder.', 'wordvec_proj.'))
        out['head.' + rest if is_ml_decoder and 'head.' + rest in own else 'body.' + k] = v
    return out


def head_shape(state_dict):
    """The ModelConfig fields that the state dict determines: use_ml_decoder, num_classes, num_of_groups,
    decoder_embedding, zsl, query_dim (only those its head tensors fix)."""
    out = {}
    for prefix in ('head.decoder.', 'fc.decoder.'):
        if prefix + 'duplicate_pooling' in state_dict:
            pool = state_dict[prefix + 'duplicate_pooling']
            out['use_ml_decoder'] = 1
            if pool.dim() == 2:  # zsl: [D, 1]
                out['zsl'] = 1
                out['decoder_embedding'] = int(pool.shape[0])
                proj = state_dict.get(prefix.replace('decoder.', 'wordvec_proj.weight'))
                out['query_dim'] = int(proj.shape[1]) if proj is not None else out['decoder_embedding']
            else:
                out['zsl'] = 0
                out['num_of_groups'] = int(pool.shape[0])
                out['decoder_embedding'] = int(pool.shape[1])
                out['num_classes'] = int(state_dict[prefix + 'duplicate_pooling_bias'].numel())
            return out
    for key in ('head.fc.weight', 'fc.weight', 'head.weight'):
        if key in state_dict and state_dict[key].dim() == 2:
            out['use_ml_decoder'] = 0
            out['num_classes'] = int(state_dict[key].shape[0])
            return out
    return out


def _mismatch_hint(state_dict, own, model_name):
    """What to change when a checkpoint does not fit: the model name, or the head flags it was saved with."""
    guess = guess_tresnet(state_dict)
    if guess and guess != model_name:
        return f'it holds {guess} weights: use --model-name {guess}'
    theirs, ours = head_shape(state_dict), head_shape(own)
    differ = {k: v for k, v in theirs.items() if k in ours and ours[k] != v and k != 'num_classes'}
    if differ:
        return 'its head was saved with ' + ' '.join(f"--{k.replace('_', '-')} {v}" for k, v in differ.items())
    return 'is it a checkpoint of another model? check --model-name and the head flags'


def load_model_weights(model, state_dict, strict=True, model_name='', source=''):
    """Load `state_dict` into `model`; on any mismatch raise a UserError naming the keys and the model expected.

    strict=True: every key must match in name and shape (a missing `num_batches_tracked` is tolerated: older
    tools did not save it). strict=False (fine-tuning): the old classifier `head.fc.*` is skipped, head tensors
    of another shape are skipped, and the backbone must match. A timm TResNet state dict is converted to our
    TResNet's layout first (timm_weights.py). `source`: the file, named in messages.
    """
    what = model_name or type(model).__name__
    own = model.state_dict()
    if isinstance(model, TResNet) and is_timm_tresnet(state_dict):
        state_dict = from_timm_tresnet(state_dict, model_name=model_name, source=source or 'the checkpoint')
    elif sum('body.' + k in own for k in state_dict) > sum(k in own for k in state_dict):
        state_dict = _as_body_and_head(state_dict, own)  # a timm model saved as it is (its keys may start with body.)

    theirs_classes, our_classes = _class_count(state_dict), getattr(model, 'num_classes', None)
    if strict and theirs_classes and our_classes and theirs_classes != our_classes and \
            _class_count(own) == our_classes:
        raise UserError(f'the checkpoint has {theirs_classes} classes but the model was built for {our_classes} '
                        f'(set --num-classes {theirs_classes})')

    def is_head(k):
        return k.startswith(('head.', 'fc.'))

    mismatched = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if strict:
        missing = [k for k in own if k not in state_dict and not k.endswith('num_batches_tracked')]
        unexpected = [k for k in state_dict if k not in own]
        to_load = state_dict
    else:
        skipped = [k for k in mismatched if is_head(k)]
        mismatched = [k for k in mismatched if not is_head(k)]
        missing = [k for k in own if k not in state_dict and not is_head(k) and not k.endswith('num_batches_tracked')]
        unexpected = []
        to_load = {k: v for k, v in state_dict.items()
                   if k in own and not k.startswith('head.fc.') and k not in skipped and k not in mismatched}
        if skipped:
            LOG.info(f'note: not loading {len(skipped)} head tensors of another shape (e.g. {skipped[0]})')
        head_loaded = [k for k in to_load if k.startswith('head.') and not k.startswith('head.fc.')]
        left_out = [k for k in state_dict if k not in to_load and k not in skipped]
        if left_out:
            LOG.info(f'note: not loading {len(left_out)} checkpoint tensors (its old classifier, or tensors the model '
                     f'has no place for): ' + ', '.join(left_out[:4]) + (' ...' if len(left_out) > 4 else ''))
        if head_loaded:
            LOG.info(f'note: also loading the checkpoint\'s head ({len(head_loaded)} tensors of the same shape), as the '
                  f'published fine-tuning did')
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (('missing', missing), ('unexpected', unexpected), ('shape-mismatched', mismatched)):
            if keys:
                shown = ', '.join(keys[:3]) + (f' (+{len(keys) - 3} more)' if len(keys) > 3 else '')
                parts.append(f'{len(keys)} {label} keys: {shown}')
        hint = _mismatch_hint(state_dict, own, model_name)
        which = f'checkpoint {source}' if source else 'checkpoint'
        raise UserError(f'{which} does not fit {what}: ' + '; '.join(parts) + f' ({hint})')
    result = model.load_state_dict(to_load, strict=False)
    return result
