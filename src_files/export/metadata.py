"""What an exported file records about its model: class names, input size and the input convention.

ONNX files keep it in the model's `metadata_props` (string keys and values, JSON where a value is a list or a
dict); .pt2 files keep the same dict as JSON in the archive's extra file `ml_decoder.json`. The key MARKER tells
a file written by export.py from any other ONNX model.
"""
import json

from src_files.errors import UserError

MARKER = 'ml_decoder.export'
FORMAT_VERSION = '1'
PT2_EXTRA_FILE = 'ml_decoder.json'

# What val_transform (src_files/helper_functions/augmentations.py) feeds the model: no mean/std normalisation.
INPUT_CONVENTION = {
    'layout': 'NCHW', 'dtype': 'float32', 'channels': 'RGB', 'range': [0.0, 1.0],
    'mean': [0.0, 0.0, 0.0], 'std': [1.0, 1.0, 1.0],
    'resize': 'bilinear (antialiased, as torchvision Resize on PIL images) to image_size x image_size, no crop',
}
OUTPUT_CONVENTION = {'multi-label': 'logits [N, num_classes]; sigmoid(logits) gives each class probability',
                     'single-label': 'logits [N, num_classes]; softmax(logits) over the classes gives probabilities'}


def build_metadata(model_name, image_size, class_names, zsl=False, task='multi-label', **extra):
    """The string -> string dict stored in an exported file; `extra` values are stored with str()."""
    if task not in OUTPUT_CONVENTION:
        raise ValueError(f'task must be one of {tuple(OUTPUT_CONVENTION)}, got {task!r}')
    props = {
        MARKER: FORMAT_VERSION,
        'model_name': str(model_name),
        'image_size': str(int(image_size)),
        'num_classes': str(len(class_names)),
        'class_names': json.dumps([str(c) for c in class_names]),
        'zsl': '1' if zsl else '0',
        'input': json.dumps(INPUT_CONVENTION),
        'task': task,
        'output': OUTPUT_CONVENTION[task],
    }
    props.update({k: str(v) for k, v in extra.items()})
    return props


def parse_metadata(props, path):
    """The metadata dict of an exported file from its string properties: class_names (list), image_size and
    num_classes (int), zsl (bool), input (dict), the other keys as strings. UserError if `props` were not
    written by export.py."""
    if props.get(MARKER) is None:
        raise UserError(f"{path} was not written by this project's export.py (it has no '{MARKER}' metadata): "
                        f"export a checkpoint with `python export.py --model-path FILE`")
    meta = dict(props)
    try:
        meta['class_names'] = json.loads(props['class_names'])
        meta['image_size'] = int(props['image_size'])
        meta['num_classes'] = int(props['num_classes'])
        meta['zsl'] = props.get('zsl', '0') == '1'
        meta['input'] = json.loads(props.get('input', json.dumps(INPUT_CONVENTION)))
        if not isinstance(meta['class_names'], list) or len(meta['class_names']) != meta['num_classes']:
            raise ValueError('class_names does not list num_classes names')
    except (KeyError, ValueError, TypeError) as error:
        raise UserError(f"{path} has broken export metadata ({type(error).__name__}: {error}); export it again") \
            from None
    return meta
