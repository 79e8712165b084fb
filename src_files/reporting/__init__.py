"""Files that describe a model's results:

- report.py: validate.py --report (per-class tables, summary, thresholds, PR curves or confusion matrix, for
  multi-label and single-label data) and --save-scores (every image's probabilities).
- curves.py: a training run's metrics.csv and curves.png.
"""
