"""Running a trained checkpoint (validate.py, infer.py, export.py, app.py):

- load.py: a checkpoint (or an exported file) -> Loaded: the model ready for inference, the settings it was built
  with (flags given, else the checkpoint's record), its class names and task; precision, --compile, NaN check.
- predictions.py: infer.py's inputs and outputs: --pic-path image lists, --thresholds files, the --output file.
- labelling.py: infer.py's labelling: read, score, pick each image's labels, print / write / draw them.
- page.py: app.py's labelling page as a Python class (Labeller): labels, attention maps, zero-shot classes, card.
"""
