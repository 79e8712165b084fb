"""Under pytest-xdist (pytest.ini starts one test process per CPU), each test process, and each script a test
starts, gets its share of the CPUs as OpenMP threads: processes whose threads outnumber the CPUs wait on each
other's threads (on 2 cores: 404 s with 2 threads per process, 303 s with 1; BENCHMARKS.md)."""
import os

_processes = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT') or 1)
if _processes > 1:
    _cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    # (set before torch is imported: its thread pool reads it; the scripts the tests start inherit it)
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, _cpus // _processes)))
