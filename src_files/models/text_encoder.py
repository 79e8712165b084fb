"""Class names to query vectors for zero-shot heads: `encode_names(names, encoder)` -> float32 [C, d], from local
files only (nothing is downloaded).

Encoders (--text-encoder):
  FILE.vec, FILE.txt     word vectors, one word per line, `word v1 ... vd` (GloVe, fastText .vec; fastText's first
                         line `count dim` is skipped). A class name is the mean of its words' vectors (split at
                         spaces, '_' and '-'); a word is looked up as written, else lower-cased; words the file
                         lacks are named in one error, never replaced by zeros.
  FILE.pth, FILE.npy     a matrix, one vector per class ([d, n] or [n, d], as NUS-WIDE's wordvec_array.pth),
                         aligned with a class list (--text-names FILE: one name per line, a JSON list, or NUS-WIDE's
                         benchmark_81_v0.json); it scores only the classes it lists.
  open_clip:DIR          an open_clip model folder: open_clip_config.json and its weights (a Hugging Face snapshot
                         folder, or the models--org--name folder of a Hugging Face cache);
  open_clip:ARCH:FILE    a built-in open_clip architecture (e.g. ViT-B-32) and its checkpoint file.
                         A name's vector is CLIP's prompt ensemble: the text tower's embedding of each template
                         (`a photo of a {}.` and a few more, or --prompts FILE, one template per line), each
                         L2-normalised, averaged, normalised again.

`TextEncoder.record()` is what a checkpoint keeps (kind, file, its SHA-256, architecture, templates, width), so
that infer.py / validate.py / export.py rebuild the same queries from the same file (`from_record`).
"""
import functools
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass

import numpy as np
import torch

from src_files.errors import UserError, why_torch_load_failed
from src_files.safe_load import torch_load

PROMPTS = ('a photo of a {}.', 'a bad photo of a {}.', 'a photo of the large {}.', 'a photo of the small {}.',
           'a cropped photo of a {}.', 'a close-up photo of a {}.', 'a good photo of a {}.')
KINDS = ('vectors', 'matrix', 'open_clip')
_HINT = ("--text-encoder takes a word-vector file (.vec / .txt), a matrix (.pth / .npy) with --text-names, "
         "open_clip:FOLDER or open_clip:ARCH:FILE (Datasets.md, 'Open-vocabulary labels')")


@dataclass(frozen=True)
class TextEncoder:
    kind: str  # 'vectors', 'matrix' or 'open_clip'
    path: str  # the file (or open_clip folder)
    arch: str = ''  # open_clip:ARCH:FILE
    names_file: str = ''  # matrix: its class list
    templates: tuple = ()  # open_clip: the prompts averaged
    sha256: str = ''  # of `path` (a folder: of its weights file)

    def record(self, dim):
        """What a checkpoint keeps (plain strings and numbers)."""
        return dict(asdict(self), templates=list(self.templates), file=os.path.basename(self.path), dim=int(dim))

    def describe(self):
        what = {'vectors': 'word vectors', 'matrix': 'a class-vector matrix', 'open_clip': 'open_clip'}[self.kind]
        return f"{what} {self.arch + ' ' if self.arch else ''}{self.path}"


def file_sha256(path):
    """SHA-256 of a file (a folder: of its open_clip weights file); computed once per version of the file."""
    if os.path.isdir(path):
        path = _weights_in(path)
    stat = os.stat(path)
    return _sha256(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path, size, mtime_ns):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            digest.update(block)
    return digest.hexdigest()


def _weights_in(folder):
    names = ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin')
    found = next((os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))), None)
    if found is None:
        raise UserError(f"{folder} holds no open_clip weights ({' or '.join(names)}); {_HINT}")
    return found


def _snapshot(folder):
    """The folder holding open_clip_config.json: `folder` itself, or the one snapshot of a Hugging Face cache
    folder (models--org--name/snapshots/<revision>/)."""
    if os.path.isfile(os.path.join(folder, 'open_clip_config.json')):
        return folder
    snapshots = os.path.join(folder, 'snapshots')
    found = sorted(os.path.join(snapshots, d) for d in os.listdir(snapshots)) if os.path.isdir(snapshots) else []
    found = [d for d in found if os.path.isfile(os.path.join(d, 'open_clip_config.json'))]
    if len(found) != 1:
        raise UserError(f"{folder} holds no open_clip_config.json (nor one Hugging Face snapshot with it); {_HINT}")
    return found[0]


def read_prompts(path):
    """Templates from a file, one per line, each with one '{}' where the class name goes."""
    if not os.path.isfile(path):
        raise UserError(f"prompt file not found: {path} (one template per line, e.g. 'a photo of a {{}}.')")
    try:
        with open(path, encoding='utf-8') as f:
            templates = tuple(line.strip() for line in f if line.strip())
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the prompts in {path}: {error}") from None
    bad = [t for t in templates if t.count('{}') != 1]
    if not templates or bad:
        raise UserError(f"{path}: every line must hold one '{{}}' where the class name goes"
                        + (f" ('{bad[0]}' does not)" if bad else ' (the file is empty)'))
    return templates


def parse_text_encoder(value, names_file=None, prompts_file=None):
    """The TextEncoder that --text-encoder `value` (with --text-names, --prompts) names; its file is hashed."""
    if value.startswith('open_clip:'):
        rest = value[len('open_clip:'):]
        arch, _, path = rest.partition(':') if not os.path.exists(rest) else ('', '', rest)
        if not path:
            arch, path = '', arch
        if not os.path.exists(path):
            raise UserError(f"open_clip model not found: {path} (a folder with open_clip_config.json and its "
                            f"weights, or ARCH:FILE; nothing is downloaded)")
        if os.path.isdir(path):
            path = _snapshot(path)
        elif not arch:
            raise UserError(f"open_clip:{path}: a checkpoint file needs its architecture, open_clip:ARCH:{path} "
                            f"(e.g. open_clip:ViT-B-32:{path})")
        templates = read_prompts(prompts_file) if prompts_file else PROMPTS
        return TextEncoder('open_clip', os.path.abspath(path), arch=arch, templates=templates,
                           sha256=file_sha256(path))
    if prompts_file:
        raise UserError("--prompts is for open_clip text encoders (word vectors have no prompt)")
    if not os.path.isfile(value):
        raise UserError(f"text encoder file not found: {value}; {_HINT}")
    suffix = os.path.splitext(value)[1].lower()
    if suffix in ('.vec', '.txt'):
        kind = 'vectors'
    elif suffix in ('.pth', '.pt', '.npy'):
        kind = 'matrix'
        if not names_file:
            raise UserError(f"{value} is a matrix of class vectors: name its classes (one per column or row) with "
                            f"--text-names FILE")
    else:
        raise UserError(f"cannot tell what kind of text encoder {value} is; {_HINT}")
    if names_file and kind != 'matrix':
        raise UserError("--text-names names the classes of a matrix file (.pth / .npy)")
    return TextEncoder(kind, os.path.abspath(value), names_file=os.path.abspath(names_file) if names_file else '',
                       sha256=file_sha256(value))


def from_record(record, override=None):
    """The encoder a checkpoint records (its file where it was, checked by hash), or `override` (--text-encoder
    given now)."""
    if override is not None:
        return override
    encoder = TextEncoder(record['kind'], record['path'], record.get('arch', ''), record.get('names_file', ''),
                          tuple(record.get('templates', ())), record.get('sha256', ''))
    if not os.path.exists(encoder.path):
        raise UserError(f"the model's text encoder {record.get('file')} is not at {encoder.path}: pass it with "
                        f"--text-encoder (the same file: SHA-256 {encoder.sha256[:12]}...)")
    if encoder.sha256 and file_sha256(encoder.path) != encoder.sha256:
        raise UserError(f"{encoder.path} has changed since the model was trained with it (its SHA-256 differs); "
                        f"pass the file it was trained with via --text-encoder")
    return encoder


def encode_names(names, encoder):
    """float32 [C, d]: one query vector per name."""
    names = [str(n) for n in names]
    if not names:
        raise UserError("no class names to encode")
    encode = {'vectors': _from_word_vectors, 'matrix': _from_matrix, 'open_clip': _from_open_clip}[encoder.kind]
    vectors = encode(names, encoder)
    if not torch.isfinite(vectors).all():
        raise UserError(f"the vectors {encoder.describe()} gives are not all finite")
    return vectors.float().contiguous()


def _words(name):
    return [w for w in re.split(r'[\s_\-]+', name.strip()) if w]


def _from_word_vectors(names, encoder):
    wanted = {w for name in names for word in _words(name) for w in (word, word.lower())}
    found, dim = {}, None
    with open(encoder.path, encoding='utf-8', errors='replace') as f:
        for number, line in enumerate(f, 1):
            word, _, rest = line.rstrip('\n').partition(' ')
            if number == 1 and re.fullmatch(r'\d+ \d+', line.strip()):
                continue  # (fastText's header: count dim)
            if word not in wanted or word in found:
                continue
            try:
                vector = np.array(rest.split(), dtype=np.float32)
            except ValueError:
                raise UserError(f"{encoder.path} line {number}: expected 'word v1 ... vd'") from None
            if dim is not None and vector.size != dim:
                raise UserError(f"{encoder.path} line {number}: {vector.size} numbers, earlier lines have {dim}")
            dim = vector.size
            found[word] = vector
    rows, missing = [], []
    for name in names:
        words = _words(name)
        vectors = [found.get(w, found.get(w.lower())) for w in words]
        missing += [f"'{w}' (in '{name}')" for w, v in zip(words, vectors) if v is None]
        if not words:
            missing.append(f"'{name}' (no word)")
        rows.append(None if not words or any(v is None for v in vectors) else np.mean(vectors, axis=0))
    if missing:
        raise UserError(f"{len(missing)} words are not in {encoder.path}: {', '.join(missing[:5])}"
                        f"{' and more' if len(missing) > 5 else ''}; rename the classes or use a file that has them")
    return torch.from_numpy(np.stack(rows))


def read_class_names(path):
    """Names of a class list: one per line, a JSON list, or NUS-WIDE's benchmark file (its sorted seen + unseen
    classes, the column order of wordvec_array.pth)."""
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


def _from_matrix(names, encoder):
    listed = read_class_names(encoder.names_file)
    if encoder.path.lower().endswith('.npy'):
        try:
            matrix = torch.from_numpy(np.load(encoder.path, allow_pickle=False)).float()
        except (OSError, ValueError) as error:
            raise UserError(f"cannot read {encoder.path} as a .npy matrix ({error})") from None
    else:
        try:
            value = torch_load(encoder.path)  # (tensors only: never code)
        except Exception as error:  # noqa: BLE001 - torch.load raises many types on a foreign file
            raise UserError(f"cannot read {encoder.path} as a matrix of class vectors "
                            f"({why_torch_load_failed(encoder.path, error)})") from None
        tensors = [value] if isinstance(value, torch.Tensor) else [
            v for v in (value.values() if isinstance(value, dict) else []) if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:
            raise UserError(f"{encoder.path} holds no single matrix of class vectors")
        matrix = tensors[0].float()
    if matrix.dim() != 2 or len(listed) not in matrix.shape:
        raise UserError(f"{encoder.path} is {list(matrix.shape)}, not one vector per class of the {len(listed)} "
                        f"that {encoder.names_file} lists")
    rows = matrix if matrix.shape[0] == len(listed) and matrix.shape[1] != len(listed) else matrix.t()
    index = {name: i for i, name in enumerate(listed)}
    missing = [n for n in names if n not in index]
    if missing:
        raise UserError(f"{len(missing)} classes are not in {encoder.names_file}: {', '.join(missing[:5])}; a matrix "
                        f"scores only its own classes (a word-vector file or open_clip encodes any name)")
    return rows[[index[n] for n in names]]


@functools.lru_cache(maxsize=1)
def _open_clip(path, arch, sha256):
    """(model in eval mode, tokenizer) of an open_clip folder or ARCH + checkpoint file, loaded once per file."""
    try:
        import open_clip  # (only for this encoder: an optional, heavy import)
    except ImportError:
        raise UserError("open_clip text encoders need the open_clip_torch package: pip install open_clip_torch") \
            from None
    os.environ.setdefault('HF_HUB_OFFLINE', '1')  # (local files only)
    name = arch or 'local-dir:' + path
    try:
        model = open_clip.create_model(name, pretrained=path if arch else None)
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as error:  # noqa: BLE001 - a foreign model file fails in many ways
        raise UserError(f"cannot load the open_clip model {arch + ' ' if arch else ''}{path}: "
                        f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}") from None
    return model.eval(), tokenizer


def _from_open_clip(names, encoder):
    model, tokenizer = _open_clip(encoder.path, encoder.arch, encoder.sha256)
    rows = []
    with torch.no_grad():
        for name in names:
            tokens = tokenizer([t.format(name) for t in encoder.templates])
            embedded = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
            rows.append(torch.nn.functional.normalize(embedded.mean(0), dim=-1))
    return torch.stack(rows)
