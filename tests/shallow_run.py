"""Run a script of the repository as its command line would, with `tresnet_m` made shallow (small_models.EVERY_KIND):
for tests that start training processes of their own (signals, concurrent runs, torchrun), where a monkeypatch
cannot reach.

    python tests/shallow_run.py train.py --data ... --model-name tresnet_m ...
    torchrun --nproc_per_node 2 tests/shallow_run.py train.py ...
"""
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

from small_models import EVERY_KIND  # noqa: E402
from src_files.models.tresnet.tresnet import TRESNET_LAYERS  # noqa: E402

if __name__ == '__main__':
    TRESNET_LAYERS['tresnet_m'] = tuple(EVERY_KIND)
    script = os.path.join(ROOT, sys.argv[1])
    sys.argv = [script] + sys.argv[2:]
    runpy.run_path(script, run_name='__main__')
