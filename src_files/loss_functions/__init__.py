"""Training losses (asymmetric loss, multi-label and single-label)."""
from .losses import AsymmetricLoss, AsymmetricLossOptimized, ASLSingleLabel

__all__ = ['AsymmetricLoss', 'AsymmetricLossOptimized', 'ASLSingleLabel']
