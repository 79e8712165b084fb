"""Scoring a model on a dataset (validate.py, and train.py's evaluation each epoch):

- predict.py: every image's scores exactly once over any number of processes; mAP and the threshold metrics,
  top-k accuracy; a checkpoint's classes matched to the data's by name.
- zsl.py: the zero-shot protocol on NUS-WIDE: ZSL and GZSL mAP, F1@3, F1@5.
"""
