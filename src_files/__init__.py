"""ML-Decoder, reproduced: the library behind train.py, train_zsl_nus.py, validate.py, infer.py and export.py.

ml_decoder/        the head (self-contained, imports only torch) and its attention maps
models/            backbones by name, checkpoint loading, norm folding, compile, ModelConfig; tresnet/
loss_functions/    ASL, multi-label and single-label
helper_functions/  metrics, EMA, weight-decay groups, image transforms (the published names)
data/              dataset layouts (COCO, VOC, CSV, OpenImages, NUS-WIDE, ImageFolder, CIFAR-100, demo, digits)
training/          the training loop (train_loop.py first), optimisation, training data, checkpoints, seeds
evaluation/        scoring a dataset (predict, metrics) and zero-shot evaluation
inference/         loading a checkpoint or exported file to score or label images; prediction files
export/            ONNX / .pt2 files, int8 (ONNX Runtime) and the parity checks
reporting/         per-class reports, metrics.csv and curves.png
cli/               every flag, their resolution into settings, and the scripts' one-line errors
settings.py        the frozen settings objects every module reads
distributed.py     torchrun set-up and the few collectives the loops need
files.py           atomic file writes
errors.py          UserError, the one-line error every bad input raises
safe_load.py       reading checkpoints as data (weights only; no code from the file runs)
"""
