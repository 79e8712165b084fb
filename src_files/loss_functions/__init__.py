"""Training losses.

losses  AsymmetricLoss (ASL, multi-label with unknown labels), AsymmetricLossOptimized, ASLSingleLabel
"""
from .losses import AsymmetricLoss, AsymmetricLossOptimized, ASLSingleLabel

__all__ = ['AsymmetricLoss', 'AsymmetricLossOptimized', 'ASLSingleLabel']
