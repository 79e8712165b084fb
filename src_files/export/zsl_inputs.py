"""The word vectors (and their class names) a zero-shot head scores outside training: the ones export.py bakes into
its file and infer.py labels images with. They come from class names given only as text (--classes, through the
text encoder the checkpoint records or --text-encoder), from --wordvecs / --class-names, else from what a zero-shot
best.pth records ('wordvecs' [d, n] and 'wordvec_classes': every class of its data, seen and unseen)."""
import os

import torch

from src_files.errors import UserError, why_torch_load_failed
from src_files.ml_decoder.ml_decoder import update_wordvecs
from src_files.models.text_encoder import encode_names, from_record, parse_text_encoder, read_class_names
from src_files.safe_load import torch_load

WORDVEC_DIM = 300


def _two_d_tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, torch.Tensor) and v.dim() == 2]
    return []


def read_wordvec_file(path, dim=WORDVEC_DIM):
    """Word vectors [dim, n] from a file saved with torch.save (e.g. NUS-WIDE's wordvec_array.pth: dim 300): a
    tensor [dim, n] or [n, dim], or a dict holding one such tensor. [dim, dim] is read as [dim, n]."""
    if not path or not os.path.isfile(path):
        raise UserError(f"word vector file not found: {path}")
    try:
        value = torch_load(path)  # (never runs code from the file)
    except Exception as error:  # noqa: BLE001 - torch.load raises many types on a foreign file
        raise UserError(f"cannot read word vectors from {path} ({why_torch_load_failed(path, error)})") from None
    tensors = [t for t in _two_d_tensors(value) if t.dim() == 2 and dim in t.shape]
    if len(tensors) != 1:
        raise UserError(f"{path} holds no single tensor of word vectors [{dim}, n] or [n, {dim}]")
    wordvecs = tensors[0].float()
    wordvecs = wordvecs if wordvecs.shape[0] == dim else wordvecs.t()
    if not torch.isfinite(wordvecs).all():
        raise UserError(f"the word vectors in {path} are not all finite")
    return wordvecs.contiguous()


def zsl_class_names(wordvecs, names_file, checkpoint_names):
    """Names of the n classes the word vectors score: from `names_file`, else the checkpoint's names when they
    are as many, else '0' ... 'n-1'."""
    n = wordvecs.shape[1]
    if names_file:
        names = read_class_names(names_file)
        if len(names) != n:
            raise UserError(f"{names_file} names {len(names)} classes but the word vectors score {n}")
        return names
    if checkpoint_names and len(checkpoint_names) == n:
        return list(checkpoint_names)
    return [str(i) for i in range(n)]


def text_encoder_of(loaded, model_path, text_encoder=None, text_names=None, prompts=None):
    """The text encoder that turns names into `loaded`'s queries: --text-encoder (with --text-names, --prompts) if
    given, else the one the checkpoint records (its file, checked by hash)."""
    given = parse_text_encoder(text_encoder, text_names, prompts) if text_encoder else None
    if given is None and loaded.text_record is None:
        raise UserError(f"{model_path} records no text encoder, so it cannot turn class names into queries: give "
                        f"one with --text-encoder (the kind of vectors it was trained on, "
                        f"{loaded.config.query_dim} wide)")
    return from_record(loaded.text_record, given) if loaded.text_record else given


def encode_for(loaded, names, encoder):
    """The [d, n] queries of `names` for `loaded`'s head, checked against the width it was trained with."""
    vectors = encode_names(names, encoder).t().contiguous()
    if vectors.shape[0] != loaded.config.query_dim:
        raise UserError(f"{encoder.describe()} gives {vectors.shape[0]}-d vectors; the model's queries are "
                        f"{loaded.config.query_dim}-d: use the encoder it was trained with")
    return vectors


def set_vocabulary(loaded, model_path, wordvecs_file=None, names_file=None, classes=None, text=None):
    """Give the zero-shot head of `loaded` (inference.load.Loaded) the classes it scores -> their names:
    `classes` (names, through the text encoder: `text` = (--text-encoder, --text-names, --prompts) or the
    checkpoint's), else --wordvecs FILE (and --class-names), else the ones the checkpoint records. For a model with
    a fixed classifier: loaded.class_names (and a UserError if classes or word vectors were given)."""
    if names_file and not wordvecs_file:
        raise UserError("--class-names names the classes of --wordvecs: give --wordvecs too")
    if not loaded.config.zsl:
        if wordvecs_file or classes:
            flag = '--wordvecs' if wordvecs_file else '--classes'
            raise UserError(f"{flag} is for zero-shot checkpoints (--zsl 1); {model_path} has a fixed classifier")
        return loaded.class_names
    if classes:
        if wordvecs_file:
            raise UserError("give the classes either as names (--classes) or as word vectors (--wordvecs), not both")
        vectors, names = encode_for(loaded, classes, text_encoder_of(loaded, model_path, *(text or ()))), classes
    elif wordvecs_file:
        vectors = read_wordvec_file(wordvecs_file, loaded.config.query_dim)
        names = zsl_class_names(vectors, names_file, loaded.class_names)
    elif loaded.vocabulary is not None:
        vectors, names = loaded.vocabulary
    else:
        raise UserError(f"{model_path} is a zero-shot model that records no word vectors: give the classes it should "
                        f"score as names with --classes (and --text-encoder), or as word vectors with --wordvecs FILE "
                        f"([300, n], e.g. NUS-WIDE's wordvec_array.pth) and their names with --class-names FILE")
    update_wordvecs(loaded.model, test_wordvecs=vectors)
    return list(names)


def read_classes(classes, classes_file):
    """The names of --classes "a,b" or --classes-file FILE (None if neither)."""
    if classes and classes_file:
        raise UserError("give --classes or --classes-file, not both")
    if classes_file:
        return read_class_names(classes_file)
    if classes is None:
        return None
    names = [n.strip() for n in classes.split(',') if n.strip()]
    if not names:
        raise UserError("--classes names no class: give them comma-separated, e.g. --classes \"red circle,blue star\"")
    return names
