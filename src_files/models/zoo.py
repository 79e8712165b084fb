"""What a checkpoint says about the model it holds, for the scripts that read one.

A best.pth of train.py records its settings ('meta': model name, image size, head, task); a training latest.pth
records its flags ('args'). A published model-zoo file records nothing but its weights and class names: its
backbone is read from the weights' shapes (factory.guess_tresnet) and its image size from the zoo's table below.
"""
# (backbone, classes) -> the image size the published zoo's file was trained and scored at (MODEL_ZOO.md)
ZOO_IMAGE_SIZES = {
    ('tresnet_m', 80): 224,  # MS-COCO
    ('tresnet_l', 80): 448,
    ('tresnet_xl', 80): 640,
    ('tresnet_m', 9605): 224,  # OpenImages
    ('tresnet_l', 196): 384,  # Stanford-Cars
}
BACKBONE_IMAGE_SIZES = {'tresnet_m': 224, 'tresnet_l': 448, 'tresnet_xl': 640}  # the zoo's COCO size of each


def recorded_settings(extras):
    """The settings a checkpoint's extras record: a best.pth's 'meta', a training latest.pth's 'args' ({} for a
    model-zoo file or a bare state dict)."""
    if isinstance(extras.get('meta'), dict):
        return extras['meta']
    if isinstance(extras.get('args'), dict) and 'optimizer' in extras:
        return extras['args']
    return {}


def zoo_image_size(model_name, num_classes=None):
    """(image size, why) for a file that records none: the zoo's size for this backbone and class count, else the
    zoo's size for the backbone; (None, '') for a model the zoo does not have."""
    if (model_name, num_classes) in ZOO_IMAGE_SIZES:
        return ZOO_IMAGE_SIZES[model_name, num_classes], f"the model zoo's {model_name} with {num_classes} classes"
    if model_name in BACKBONE_IMAGE_SIZES:
        return BACKBONE_IMAGE_SIZES[model_name], f"the model zoo's size for {model_name}"
    return None, ''
