"""Faults a run meets on shared machines and schedulers: two runs into one folder, a full disk at each write, SIGTERM
(preemption) then the same command again, a killed rank under torchrun, a killed torchrun, running out of memory,
a damaged checkpoint. Each ends in one line, leaves no temporary file, keeps what was saved, and a restarted run
ends with the uninterrupted run's weights. Training processes of their own run through tests/shallow_run.py (a
shallow tresnet_m, 64 px)."""
import builtins
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import infer
import train
import validate
from src_files.cli import run
from src_files.data.demo import demo_coco_root
from src_files.errors import UserError
from src_files.models import load_checkpoint
from src_files.training import checkpoint as ckpt
from small_models import shallow_tresnet_m
from tests.script_calls import assert_user_error, call_main

ROOT = Path(__file__).resolve().parent.parent
SHALLOW_RUN = str(ROOT / 'tests' / 'shallow_run.py')
REAL_OPEN = builtins.open
SMALL = ['--model-name', 'tresnet_m', '--image-size', '64', '--batch-size', '8', '--workers', '0', '--lr', '1e-3']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return demo_coco_root(cache_dir=str(tmp_path_factory.mktemp('faults')), num_train=16, num_val=8)


def command(data, out, epochs, *extra, launcher=None):
    return (launcher or [sys.executable]) + [SHALLOW_RUN, 'train.py', '--data', str(data), '--epochs', str(epochs),
                                             '--output-dir', str(out)] + SMALL + [str(e) for e in extra]


def start(cmd, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(proc, timeout=240):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(path, proc, timeout=180):
    deadline = time.time() + timeout
    while not Path(path).exists():
        assert proc.poll() is None and time.time() < deadline, finish(proc)
        time.sleep(0.1)


def assert_same_run(a, b):
    """Two latest.pth: every tensor of the model and the EMA equal, and the same metrics per epoch."""
    a, b = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    for part in ('model', 'ema'):
        differ = [k for k in a[part] if not torch.equal(a[part][k], b[part][k])]
        assert not differ, (part, differ[:3])
    keys = ('loss', 'mAP', 'mAP_ema', 'best')
    assert [[row[k] for k in keys] for row in a['history']] == [[row[k] for k in keys] for row in b['history']]


def leftovers(folder):
    return [p.name for p in Path(folder).rglob('*') if p.name.endswith('.tmp') or '.tmp.' in p.name
            or p.name.startswith('.write_test')]


# ----------------------------------------------------------------------------------------------------------
# One writer per folder.

def test_two_runs_started_together_into_one_folder(data, tmp_path):
    """One stops with one line; the other's best.pth is its own, tensor for tensor (as the same run alone)."""
    procs = [start(command(data, tmp_path / 'shared', 2, '--seed', seed), tmp_path) for seed in (1, 2)]
    results = [finish(p) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], [r[2][-500:] for r in results]
    winner = [seed for seed, (code, _, _) in zip((1, 2), results) if code == 0][0]
    loser_err = [err for code, _, err in results if code == 1][0]
    line = assert_user_error(1, loser_err)
    assert 'another run is writing to' in line or 'already holds a run' in line, line
    code, _, err = finish(start(command(data, tmp_path / 'alone', 2, '--seed', winner), tmp_path))
    assert code == 0, err
    alone = torch.load(tmp_path / 'alone' / 'best.pth', weights_only=True)['model']
    shared = torch.load(tmp_path / 'shared' / 'best.pth', weights_only=True)['model']
    assert alone.keys() == shared.keys() and all(torch.equal(alone[k], shared[k]) for k in alone)
    assert not leftovers(tmp_path / 'shared')


def test_the_folder_lock_names_its_holder(tmp_path):
    from src_files.files import folder_lock
    with folder_lock(str(tmp_path)):
        code = ("import sys; sys.path.insert(0, %r)\nfrom src_files.files import folder_lock\n"
                "from src_files.errors import UserError\ntry:\n    with folder_lock(%r): print('got it')\n"
                "except UserError as e: print(e)") % (str(ROOT), str(tmp_path))
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True).stdout
    assert out.startswith(f'another run is writing to {tmp_path} (pid {os.getpid()} on '), out
    with folder_lock(str(tmp_path)):  # (released: the kernel drops it with the holder)
        pass


# ----------------------------------------------------------------------------------------------------------
# A full disk at each write.

class FullDisk:
    """builtins.open, except that the `fail_at`-th temporary file opened for writing (counting from 1) fails with
    ENOSPC after 100 bytes, as a disk that fills up does. Records the files it saw."""

    def __init__(self, fail_at=0):
        self.fail_at, self.seen, self.real = fail_at, [], REAL_OPEN

    def __call__(self, file, mode='r', *args, **kwargs):
        handle = self.real(file, mode, *args, **kwargs)
        name = os.path.basename(str(file))
        if any(m in mode for m in 'wax') and ('.tmp' in name):
            self.seen.append(str(file))
            if len(self.seen) == self.fail_at:
                return _Filling(handle)
        return handle


class _Filling:
    def __init__(self, handle):
        self.handle, self.written = handle, 0

    def write(self, data):
        self.written += len(data)
        if self.written > 100:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _train(data, out, epochs, capfd):
    return call_main(train, ['--data', data, '--epochs', epochs, '--output-dir', out] + SMALL, capfd)


@pytest.mark.slow
def test_a_full_disk_at_each_write_of_a_training_run(data, tmp_path, capfd, monkeypatch):
    """Every file epoch 2 writes (best.pth, latest.pth, metrics.csv, curves.png) in turn meets a full disk: one line
    naming it, no temporary file, and epoch 1's latest.pth intact."""
    shallow_tresnet_m(monkeypatch)
    counted = {}
    for epochs in (1, 2):
        counting = FullDisk()
        monkeypatch.setattr(builtins, 'open', counting)
        code, _, err = _train(data, tmp_path / f'count_{epochs}', epochs, capfd)
        assert code == 0, err
        counted[epochs] = counting.seen
    first, total = len(counted[1]), len(counted[2])
    second_epoch = [os.path.basename(p).split('.')[0] for p in counted[2][first:]]
    assert {'latest', 'metrics', 'curves'} <= set(second_epoch), second_epoch
    for k in range(first + 1, total + 1):
        out = tmp_path / f'full_{k}'
        full = FullDisk(fail_at=k)
        monkeypatch.setattr(builtins, 'open', full)
        code, _, err = _train(data, out, 2, capfd)
        name = os.path.basename(full.seen[k - 1]).split('.')[0]
        line = assert_user_error(code, err, 'cannot write', name, 'no space left on the device', 'is intact')
        monkeypatch.setattr(builtins, 'open', full.real)
        assert not leftovers(out), (line, leftovers(out))
        assert ckpt.load_latest(str(out / 'latest.pth'))['epoch'] >= 1, line


@pytest.mark.slow
def test_a_full_disk_under_predictions_scores_and_reports(data, tmp_path, capfd, monkeypatch):
    shallow_tresnet_m(monkeypatch)
    code, _, err = _train(data, tmp_path / 'run', 1, capfd)
    assert code == 0, err
    best = tmp_path / 'run' / 'best.pth'
    for script, args, name in (
            (infer, ['--pic-path', Path(data) / 'val2014', '--output', tmp_path / 'o' / 'preds.csv'], 'preds.csv'),
            (validate, ['--data', data, '--save-scores', tmp_path / 'o' / 'scores.csv'], 'scores.csv'),
            (validate, ['--data', data, '--json', tmp_path / 'o' / 'metrics.json'], 'metrics.json'),
            (validate, ['--data', data, '--report', tmp_path / 'o' / 'report'], 'report')):
        monkeypatch.setattr(builtins, 'open', FullDisk(fail_at=1))
        code, _, err = call_main(script, ['--model-path', best, '--workers', 0] + args, capfd)
        monkeypatch.setattr(builtins, 'open', FullDisk().real)
        assert_user_error(code, err, 'cannot write', name, 'no space left on the device')
        assert not leftovers(tmp_path / 'o')
        assert not (tmp_path / 'o' / name).is_file()


# ----------------------------------------------------------------------------------------------------------
# Preemption (SIGTERM), restarts with the same command, Ctrl-C during a save.

@pytest.mark.slow
def test_sigterm_mid_epoch_then_the_same_command_ends_as_the_uninterrupted_run(data, tmp_path):
    code, _, err = finish(start(command(data, tmp_path / 'straight', 3), tmp_path))
    assert code == 0, err
    same = command(data, tmp_path / 'preempted', 3, '--resume', 'auto')  # (what a job script runs on every start)
    proc = start(same, tmp_path)
    wait_for(tmp_path / 'preempted' / 'latest.pth', proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == 143, err
    line = assert_user_error(code, err, 'is saved in', '--resume')
    saved = ckpt.load_latest(str(tmp_path / 'preempted' / 'latest.pth'))['epoch']
    assert f'epoch {saved} is saved' in line and not leftovers(tmp_path / 'preempted')
    code, out, err = finish(start(same, tmp_path))
    assert code == 0 and 'resuming' in out, err
    assert_same_run(tmp_path / 'straight' / 'latest.pth', tmp_path / 'preempted' / 'latest.pth')


def test_resume_auto_starts_a_run_where_there_is_none_and_over_a_lone_best(data, tmp_path, capfd, monkeypatch):
    shallow_tresnet_m(monkeypatch)
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'best.pth').write_bytes(b'left by a run stopped while saving its first epoch')
    code, stdout, err = call_main(train, ['--data', data, '--epochs', 1, '--output-dir', out, '--resume', 'auto']
                                  + SMALL, capfd)
    assert code == 0 and 'starting that run over' in stdout, err
    code, stdout, err = call_main(train, ['--data', data, '--epochs', 1, '--output-dir', out, '--resume', 'auto']
                                  + SMALL, capfd)
    assert code == 0 and 'already finished' in stdout, err  # (a restarted job whose run had ended: nothing to do)


def test_ctrl_c_during_a_save_names_the_epoch_latest_really_holds(data, tmp_path, capfd, monkeypatch):
    shallow_tresnet_m(monkeypatch)
    real_save, calls = ckpt.save, []

    def interrupted_second_latest(obj, path):
        if path.endswith(ckpt.LATEST):
            calls.append(path)
            if len(calls) == 2:
                raise KeyboardInterrupt
        real_save(obj, path)
    monkeypatch.setattr(ckpt, 'save', interrupted_second_latest)
    code, _, err = _train(data, tmp_path / 'run', 3, capfd)
    line = assert_user_error(code, err, 'epoch 1 is saved')
    assert code == 130 and 'interrupted during epoch 2/3' in line
    assert ckpt.load_latest(str(tmp_path / 'run' / 'latest.pth'))['epoch'] == 1


# ----------------------------------------------------------------------------------------------------------
# torchrun: a killed rank, a killed launcher.

def _torchrun(nproc=2, restarts=0):
    return [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc), '--max-restarts',
            str(restarts), '--master-port', '0', '--rdzv-backend', 'c10d', '--rdzv-endpoint', 'localhost:0']


def _workers(marker):
    """pids of the training processes whose command line holds `marker` (the run's folder) and RANK is set."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f'/proc/{entry}/cmdline').read_bytes().split(b'\0')
            environ = Path(f'/proc/{entry}/environ').read_bytes().split(b'\0')
        except OSError:
            continue
        if any(marker.encode() in part for part in cmdline) and any(e.startswith(b'RANK=') for e in environ) \
                and b'torch.distributed.run' not in b' '.join(cmdline):
            found.append((int(entry), next(e for e in environ if e.startswith(b'RANK=')).decode()[5:]))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_torchrun_restarts_after_a_killed_rank_and_ends_as_the_uninterrupted_run(data, tmp_path):
    # (--ema-decay 0.5: the EMA follows the model closely, so an EMA that differed from process to process, as the
    # norm layers' running statistics do, would show in the EMA's mAP after the restart)
    code, _, err = finish(start(command(data, tmp_path / 'straight', 3, '--resume', 'auto', '--ema-decay', 0.5,
                                        launcher=_torchrun()), tmp_path))
    assert code == 0, err[-2000:]
    proc = start(command(data, tmp_path / 'killed', 3, '--resume', 'auto', '--ema-decay', 0.5,
                         launcher=_torchrun(restarts=1)), tmp_path)
    wait_for(tmp_path / 'killed' / 'latest.pth', proc)
    time.sleep(0.3)
    ranks = dict((rank, pid) for pid, rank in _workers(str(tmp_path / 'killed')))
    os.kill(ranks['1'], signal.SIGKILL)
    code, out, err = finish(proc)
    assert code == 0 and 'resuming' in out, err[-2000:]
    assert_same_run(tmp_path / 'straight' / 'latest.pth', tmp_path / 'killed' / 'latest.pth')


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_killing_torchrun_ends_its_workers_within_10_s(data, tmp_path):
    log = open(tmp_path / 'log.txt', 'w')  # (not a pipe: a worker writing into a closed pipe would die of that)
    proc = subprocess.Popen(command(data, tmp_path / 'orphans', 50, launcher=_torchrun()), cwd=str(tmp_path),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log, stderr=log,
                            start_new_session=True)
    deadline = time.time() + 180
    while not (tmp_path / 'orphans' / 'latest.pth').exists():
        assert proc.poll() is None and time.time() < deadline, (tmp_path / 'log.txt').read_text()[-2000:]
        time.sleep(0.1)
    workers = [pid for pid, _ in _workers(str(tmp_path / 'orphans'))]
    assert len(workers) == 2
    proc.kill()
    proc.wait()
    log.close()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f'/proc/{pid}').exists() and
                                         b'zombie' not in Path(f'/proc/{pid}/status').read_bytes().lower()
                                         for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f'/proc/{pid}').exists()
             and b'zombie' not in Path(f'/proc/{pid}/status').read_bytes().lower()]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive


# ----------------------------------------------------------------------------------------------------------
# Memory, damaged files.

@pytest.mark.parametrize('message', [
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "1073741824 bytes. Error code 12 (Cannot allocate memory)", None])
def test_running_out_of_host_memory_is_one_line(capfd, message):
    def main(argv):
        raise RuntimeError(message) if message else MemoryError()
    with pytest.raises(SystemExit) as exit_info:
        run.run_main(main, [])
    _, err = capfd.readouterr()
    assert_user_error(exit_info.value.code, err, 'out of memory (RAM): lower --batch-size')


def _flip_a_tensor_byte(path, tensor):
    raw = bytearray(Path(path).read_bytes())
    at = raw.find(tensor.numpy().tobytes())
    assert at > 0
    raw[at + 5] ^= 0x10
    Path(path).write_bytes(bytes(raw))


def test_a_checkpoint_with_a_flipped_byte_in_a_tensor_is_refused(tmp_path):
    marker = torch.arange(1000, dtype=torch.float32) * 0.5 + 3.0
    ckpt.save_best(str(tmp_path / 'best.pth'), {'w': marker.clone()}, ['a'], {'model_name': 'tresnet_m'})
    assert torch.equal(load_checkpoint(str(tmp_path / 'best.pth'))[0]['w'], marker)  # (intact: loads)
    _flip_a_tensor_byte(tmp_path / 'best.pth', marker)
    with pytest.raises(UserError, match=r'best.pth is damaged: its tensors do not match the checksum'):
        load_checkpoint(str(tmp_path / 'best.pth'))
    state = {'model': {'w': marker.clone()}, 'ema': {}, 'optimizer': {}, 'scheduler': {}, 'epoch': 1, 'args': {}}
    ckpt.save(state, str(tmp_path / 'latest.pth'))
    _flip_a_tensor_byte(tmp_path / 'latest.pth', marker)
    with pytest.raises(UserError, match=r'latest.pth is damaged'):
        ckpt.load_latest(str(tmp_path / 'latest.pth'))
    torch.save({'model': {'w': marker}}, tmp_path / 'published.pth')  # (no checksum recorded: loads as it is)
    assert torch.equal(load_checkpoint(str(tmp_path / 'published.pth'))[0]['w'], marker)


def _one_step_each(rank, store_file, share, results):
    """One DDP step of a model with a norm layer on this rank's own batch, then the EMA update, as train_step does
    (with or without distributed.share_buffers): -> results[rank] = the EMA's running mean."""
    import torch.distributed as dist
    from src_files import distributed
    from src_files.helper_functions.ema import ModelEma
    dist.init_process_group('gloo', init_method=f'file://{store_file}', rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    ema = ModelEma(model, decay=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = torch.randn(8, 4, generator=torch.Generator().manual_seed(rank)) * (rank + 1)
    ddp(batch).pow(2).sum().backward()
    optimizer.step()
    if share:
        distributed.share_buffers(model)
    ema.update(model)
    results[rank] = ema.module[1].running_mean.clone()
    dist.destroy_process_group()


@pytest.mark.parametrize('share', [False, True])
def test_every_process_keeps_the_same_ema_under_torchrun(tmp_path, share):
    """Each process's forward updates its norm layers' running statistics from its own batch; the EMA read between
    the step and DistributedDataParallel's next hand-out would differ per process (so a restarted run, which gives
    every process the main one's saved EMA, would not evaluate as the uninterrupted run did). share_buffers, which
    train_step calls before the EMA update, makes them the main process's."""
    import torch.multiprocessing as mp
    context = mp.get_context('spawn')
    results = context.Manager().dict()
    procs = [context.Process(target=_one_step_each, args=(rank, str(tmp_path / 'store'), share, results))
             for rank in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert torch.equal(results[0], results[1]) == share


@pytest.mark.slow
def test_a_full_disk_under_an_export(data, tmp_path, capfd, monkeypatch):
    import export
    shallow_tresnet_m(monkeypatch)
    code, _, err = _train(data, tmp_path / 'run', 1, capfd)
    assert code == 0, err
    (tmp_path / 'o').mkdir()
    monkeypatch.setattr(builtins, 'open', FullDisk(fail_at=1))
    code, _, err = call_main(export, ['--model-path', tmp_path / 'run' / 'best.pth', '--output',
                                      tmp_path / 'o' / 'model.onnx'], capfd)
    monkeypatch.setattr(builtins, 'open', REAL_OPEN)
    assert_user_error(code, err, 'cannot write', 'model.onnx', 'no space left on the device')
    assert not leftovers(tmp_path / 'o') and not (tmp_path / 'o' / 'model.onnx').exists()
