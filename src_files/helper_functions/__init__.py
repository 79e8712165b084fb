"""The published helpers, under their published names.

metrics           mAP and average precision, threshold metrics, F1@k
ema               ModelEma, the exponential moving average of the weights
optim             add_weight_decay, Adam's two parameter groups
augmentations     the published train / val transforms, and uint8 batches scaled on the device
helper_functions  re-exports of the published names
"""
