"""The word vectors (and their class names) a zero-shot head scores outside training: the ones export.py bakes into
its file and infer.py labels images with. They come from --wordvecs / --class-names, else from what a best.pth of
train_zsl_nus.py records ('wordvecs' [300, n] and 'wordvec_classes': every class of its data, seen and unseen)."""
import json
import os

import torch

from src_files.errors import UserError, why_torch_load_failed
from src_files.ml_decoder.ml_decoder import update_wordvecs
from src_files.safe_load import torch_load

WORDVEC_DIM = 300


def _two_d_tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, torch.Tensor) and v.dim() == 2]
    return []


def read_wordvec_file(path):
    """Word vectors [300, n] from a file saved with torch.save (e.g. NUS-WIDE's wordvec_array.pth): a tensor
    [300, n] or [n, 300], or a dict holding one such tensor. [300, 300] is read as [300, n]."""
    if not path or not os.path.isfile(path):
        raise UserError(f"word vector file not found: {path}")
    try:
        value = torch_load(path)  # (never runs code from the file)
    except Exception as error:  # noqa: BLE001 - torch.load raises many types on a foreign file
        raise UserError(f"cannot read word vectors from {path} ({why_torch_load_failed(path, error)})") from None
    tensors = [t for t in _two_d_tensors(value) if t.dim() == 2 and WORDVEC_DIM in t.shape]
    if len(tensors) != 1:
        raise UserError(f"{path} holds no single tensor of word vectors [{WORDVEC_DIM}, n] or [n, {WORDVEC_DIM}]")
    wordvecs = tensors[0].float()
    wordvecs = wordvecs if wordvecs.shape[0] == WORDVEC_DIM else wordvecs.t()
    if not torch.isfinite(wordvecs).all():
        raise UserError(f"the word vectors in {path} are not all finite")
    return wordvecs.contiguous()


def read_class_names(path):
    """Class names from a text file (one per line), a JSON list, or NUS-WIDE's benchmark_81_v0.json (the sorted
    union of its 'train class' and 'test class' lists: the column order of wordvec_array.pth)."""
    if not os.path.isfile(path):
        raise UserError(f"class name file not found: {path}")
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the class names in {path}: {error}") from None
    if path.lower().endswith('.json'):
        try:
            value = json.loads(text)
        except ValueError as error:
            raise UserError(f"{path} is not valid JSON ({error})") from None
        if isinstance(value, dict) and 'train class' in value and 'test class' in value:
            value = sorted(list(value['train class']) + list(value['test class']))
        if not isinstance(value, list):
            raise UserError(f"{path} holds no JSON list of class names (nor a NUS-WIDE benchmark file)")
        return [str(v) for v in value]
    return [line.strip() for line in text.splitlines() if line.strip()]


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


def set_vocabulary(loaded, model_path, wordvecs_file=None, names_file=None):
    """Give the zero-shot head of `loaded` (inference.load.Loaded) the classes it scores: --wordvecs FILE (and
    --class-names), else the ones the checkpoint records. -> their names. For a model with a fixed classifier:
    loaded.class_names (and a UserError if word vectors were given)."""
    if names_file and not wordvecs_file:
        raise UserError("--class-names names the classes of --wordvecs: give --wordvecs too")
    if not loaded.config.zsl:
        if wordvecs_file:
            raise UserError(f"--wordvecs is for zero-shot checkpoints (--zsl 1); {model_path} has a fixed classifier")
        return loaded.class_names
    if wordvecs_file:
        vectors = read_wordvec_file(wordvecs_file)
        names = zsl_class_names(vectors, names_file, loaded.class_names)
    elif loaded.vocabulary is not None:
        vectors, names = loaded.vocabulary
    else:
        raise UserError(f"{model_path} is a zero-shot model that records no word vectors: give the word vectors of "
                        f"the classes it should score with --wordvecs FILE ([300, n], e.g. NUS-WIDE's "
                        f"wordvec_array.pth) and their names with --class-names FILE")
    update_wordvecs(loaded.model, test_wordvecs=vectors)
    return list(names)
