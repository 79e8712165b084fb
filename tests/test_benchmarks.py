"""CPU smoke runs of the benchmark scripts (tiny sizes): they run end to end and print their tables."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / 'benchmarks'
TINY = ['--device', 'cpu', '--model-name', 'tresnet_m', '--image-size', '64', '--batch-size', '2',
        '--iters', '1', '--warmup', '0']


@pytest.mark.parametrize('script,extra,rows', [
    ('bench_train.py', ['--modes', 'published,fast+lowmem', '--profile', '1'], ['published', 'fast+lowmem']),
    ('bench_infer.py', [], ['published', 'fast']),
])
def test_benchmark_script_runs_on_cpu(script, extra, rows):
    out = subprocess.run([sys.executable, script, *TINY, *extra], cwd=BENCH, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(('# train tresnet', '# infer tresnet')))
    table = [line for line in lines[start:] if line.startswith('| ')]
    assert [line.split('|')[1].strip() for line in table[1:]] == rows
    if script == 'bench_infer.py':
        assert 'logits fast vs published: relative difference' in out.stdout
    if '--profile' in extra:  # the profile of the fast mode: time by category, adding up to the busy time
        assert '# train fast+lowmem: 1 profiled steps' in out.stdout
        shares = [float(line.split('|')[3].strip().rstrip('%')) for line in out.stdout.splitlines()
                  if line.startswith('| ') and line.strip().endswith('% |')]
        assert len(shares) >= 3 and abs(sum(shares) - 100) < 1, shares


def test_mode_grammar():
    sys.path.insert(0, str(BENCH))
    from common import parse_mode
    mode = parse_mode('fast+lowmem+regional')
    assert mode['lowmem'] and mode['compile'] and mode['scope'] == 'regional' and mode['compile_mode'] is None
    assert parse_mode('fast+cudagraphs')['compile_mode'] == 'reduce-overhead'
    assert parse_mode('fast+budget0.5')['memory_budget'] == 0.5
    assert parse_mode('fast+bf16')['half'] == 'bf16' and not parse_mode('fast+bf16')['compile']
    for bad in ('fast+turbo', 'published+compile', 'slow'):
        with pytest.raises(SystemExit):
            parse_mode(bad)


def test_head_benchmark_runs_on_cpu():
    out = subprocess.run([sys.executable, 'bench_head.py', '--device', 'cpu', '--batch-size', '1', '--iters', '1',
                          '--warmup', '0', '--cases', '0'], cwd=BENCH, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '80 classes, 14x14' in out.stdout and 'x |' in out.stdout


def test_memory_benchmark_counts_less_for_the_memory_saving_norms():
    out = subprocess.run([sys.executable, 'bench_memory.py', '--model-name', 'tresnet_m', '--image-size', '64',
                          '--batch-size', '1'], cwd=BENCH, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    mib = {line.split('|')[1].strip(): float(line.split('|')[2]) for line in out.stdout.splitlines()
           if line.startswith('| ') and line.split('|')[2].strip().replace('.', '').isdigit()}
    assert set(mib) == {'published', 'fast', 'fast+lowmem'}
    assert mib['fast+lowmem'] < 0.9 * mib['fast']  # one tensor per norm fewer (about -18% at this size)


def test_norm_benchmark_runs_on_cpu():
    out = subprocess.run([sys.executable, 'bench_norm.py', '--device', 'cpu', '--shape', '2,8,8,8', '--iters', '1',
                          '--warmup', '0'], cwd=BENCH, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '| standard ' in out.stdout and '| memory-saving ' in out.stdout
