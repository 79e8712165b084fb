"""Zero-shot training: the class queries built from the class names by a text encoder (--text-encoder), and the
query augmentation the paper proposes for generalising to unseen classes (off by default: the published recipe).

- `text_encoder(data)`: the TextEncoder of --text-encoder (None without the flag), whose record best.pth keeps so
  that infer.py / validate.py / export.py rebuild the same queries for any names; `queries(names, encoder)`: the
  names' vectors [d, C] (update_wordvecs' layout);
- `zero_shot_task(task, settings)`: train.py --zsl 1 on any multi-label layout: one query per class of the data;
- `QueryDrop` (--query-drop P): each step leaves out each class's query with probability P. ML-Decoder's queries
  do not attend to each other, so leaving a query out is leaving its class's terms out of the loss;
- `add_query_noise` (--query-noise S): each training forward adds Gaussian noise of S times the vectors' RMS to
  the query vectors (the word embeddings, before the head's projection).
"""
import dataclasses

import torch

from src_files.ml_decoder.ml_decoder import update_wordvecs
from src_files.models.text_encoder import encode_names, parse_text_encoder


def text_encoder(data):
    """The TextEncoder of data.text_encoder (+ text_names, prompts), None without one."""
    return parse_text_encoder(data.text_encoder, data.text_names, data.prompts) if data.text_encoder else None


def queries(names, encoder):
    """[d, C] query vectors of `names` (update_wordvecs' layout)."""
    return encode_names(names, encoder).t().contiguous()


def zero_shot_task(task, settings):
    """(task, settings) of train.py --zsl 1: the data's class names as queries; the head gets one query per class
    (unless --num-of-groups says otherwise) as wide as the encoder's vectors."""
    encoder = text_encoder(settings.data)
    vectors = queries(task.class_names, encoder)
    record = encoder.record(vectors.shape[0])
    model = settings.model
    groups = len(task.class_names) if model.num_of_groups in (None, -1) else model.num_of_groups
    settings = dataclasses.replace(settings, model=dataclasses.replace(model, query_dim=int(vectors.shape[0]),
                                                                       num_of_groups=groups))
    task = dataclasses.replace(
        task, setup_model=lambda module: update_wordvecs(module, train_wordvecs=vectors),
        describe=task.describe + f"\nzero-shot queries: {len(task.class_names)} class names through "
                                 f"{record['kind']} {record['file']} ({vectors.shape[0]}-d)",
        saved=dict(task.saved, wordvecs=vectors.clone(), wordvec_classes=list(task.class_names),
                   text_encoder=record))
    return task, settings


class QueryDrop(torch.nn.Module):
    """`criterion` over the classes kept this step: each left out with probability `p` (at least one kept)."""

    def __init__(self, criterion, p):
        super().__init__()
        self.criterion, self.p = criterion, p

    def forward(self, logits, targets):
        keep = torch.rand(logits.shape[1], device=logits.device) >= self.p
        if not keep.any():
            keep[torch.randint(logits.shape[1], (1,), device=logits.device)] = True
        return self.criterion(logits[:, keep], targets[:, keep])


def _noisy_queries(sigma):
    def hook(head, inputs):
        if head.training and getattr(head, 'zsl', False) and head.decoder.query_embed is not None:
            clean = head._clean_queries = head.decoder.query_embed  # (put back after the forward: _restore)
            scale = sigma * clean.float().pow(2).mean().sqrt()
            head.decoder.query_embed = clean + scale * torch.randn_like(clean)
    return hook


def add_query_noise(model, sigma):
    """From now on, each training forward of `model`'s zero-shot heads sees its query vectors with Gaussian noise
    (sigma x their RMS); evaluation (eval mode) sees them clean."""
    heads = [m for m in model.modules() if getattr(m, 'zsl', False) and hasattr(m, 'wordvec_proj')]
    for head in heads:
        head.register_forward_pre_hook(_noisy_queries(sigma))
        head.register_forward_hook(lambda head, inputs, output: _restore(head))
    return model


def _restore(head):
    clean = head.__dict__.pop('_clean_queries', None)
    if clean is not None:
        head.decoder.query_embed = clean
