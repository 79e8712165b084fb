"""CPU smoke runs of the benchmark scripts (tiny sizes): they run end to end and print their tables."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / 'benchmarks'
TINY = ['--device', 'cpu', '--model-name', 'tresnet_m', '--image-size', '64', '--batch-size', '2',
        '--iters', '1', '--warmup', '0']


@pytest.mark.parametrize('script,extra,rows', [
    ('bench_train.py', ['--modes', 'published,fast+lowmem'], ['published', 'fast+lowmem']),
    ('bench_infer.py', [], ['published', 'fast']),
])
def test_benchmark_script_runs_on_cpu(script, extra, rows):
    out = subprocess.run([sys.executable, script, *TINY, *extra], cwd=BENCH, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    table = [line for line in out.stdout.splitlines() if line.startswith('| ')]
    assert [line.split('|')[1].strip() for line in table[1:]] == rows
    if script == 'bench_infer.py':
        assert 'relative difference' in out.stdout


def test_head_benchmark_runs_on_cpu():
    out = subprocess.run([sys.executable, 'bench_head.py', '--device', 'cpu', '--batch-size', '1', '--iters', '1',
                          '--warmup', '0', '--cases', '0'], cwd=BENCH, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '80 classes, 14x14' in out.stdout and 'x |' in out.stdout
