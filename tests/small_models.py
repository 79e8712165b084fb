"""TResNets with fewer blocks, for the tests whose cost grows with the depth of the model (a whole-model compile
traces every block; a training step updates, and a checkpoint writes, every parameter) and whose checks do not need
TResNet-M's 21 blocks: the same stages, widths and kinds of blocks, fewer copies of them."""
from src_files.ml_decoder.ml_decoder import add_ml_decoder_head
from src_files.models.tresnet.tresnet import TRESNET_LAYERS, TResNet

# Blocks per stage (TResNet-M: 3, 4, 11, 3) keeping every kind of block TResNet-M has: the first block of each stage
# (a BasicBlock without and one with downsampling, Bottlenecks with and without squeeze-excite) and a repeated
# Bottleneck with and without squeeze-excite.
EVERY_KIND = (1, 1, 2, 2)


def small_tresnet(num_classes, layers=EVERY_KIND, **head):
    """A TResNet with `layers` blocks per stage and the ML-Decoder head create_model puts on TResNet-M (`head`:
    add_ml_decoder_head's settings)."""
    model = TResNet(layers, num_classes=num_classes)
    return add_ml_decoder_head(model, num_classes=num_classes, **head)


def shallow_tresnet_m(monkeypatch, layers=EVERY_KIND):
    """Until the test ends, `tresnet_m` (create_model, and so train.py / validate.py in this process) is a TResNet
    with `layers` blocks per stage."""
    monkeypatch.setitem(TRESNET_LAYERS, 'tresnet_m', tuple(layers))
