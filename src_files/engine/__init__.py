"""The training/evaluation engine shared by the top-level scripts.

cli (flags, one-line errors), distributed (torchrun set-up, sharded evaluation), checkpoint (atomic
latest/best files, RNG state), trainer (the one training loop), evaluation / zsl (scores and metrics),
inference (checkpoint -> model for validate/infer), plots (metrics.csv, curves.png).
"""
