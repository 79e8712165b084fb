"""Metrics, model EMA, optimizer parameter groups and train/val image transforms."""
