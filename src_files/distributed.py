"""Process-group setup for `torchrun` (NCCL on GPUs, gloo on CPUs) and the few collectives the loops need.

A plain `python train.py` is a world of one process and never touches torch.distributed.
"""
import ctypes
import datetime
import os
import signal
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from src_files.errors import UserError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


def resolve_device(name):
    """torch.device for --device, with a clear error when CUDA is asked for but absent."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown --device '{name}': use cpu, cuda or cuda:N") from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA GPU is visible: use --device cpu")
    if device.type not in ('cpu', 'cuda'):
        raise UserError(f"--device {name}: only cpu and cuda are supported")
    return device


TIMEOUT_MIN = 10  # a collective that waits longer for a rank that stopped responding fails (then every rank ends)


def peer_lost(error):
    """Whether `error` says that another process of the group is gone (its connection closed, or it timed out)."""
    text = str(error)
    return isinstance(error, getattr(dist, 'DistError', ())) or \
        any(s in text for s in ('Connection closed by peer', 'Connection reset by peer', 'gloo', 'Gloo'))


def end_with_launcher():
    """Under torchrun: ask the kernel to send this process SIGTERM when its launcher dies (Linux), so a killed
    torchrun never leaves its workers running and writing the run folder (the SIGTERM stops them as Ctrl-C does)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # (the launcher was gone before the request)
        os.kill(os.getpid(), signal.SIGTERM)


def round_store(rank, world_size, timeout):
    """The key-value store the processes meet in (torchrun's, at MASTER_ADDR:MASTER_PORT), with the keys of this
    start kept apart from those of earlier ones: after `torchrun --max-restarts` restarts a group, the keys its first
    start left would otherwise point the new processes at the old ones' addresses, and gloo's connections fail."""
    agent_hosts_it = os.environ.get('TORCHELASTIC_USE_AGENT_STORE', '').lower() == 'true'
    store = dist.TCPStore(os.environ.get('MASTER_ADDR', 'localhost'), int(os.environ['MASTER_PORT']), world_size,
                          is_master=not agent_hosts_it and rank == 0, timeout=timeout)
    return dist.PrefixStore(f"ml_decoder/start{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def setup(device_name):
    """Detect torchrun (WORLD_SIZE/RANK/LOCAL_RANK), join the process group and pick this process's device. A
    collective that waits more than TIMEOUT_MIN minutes for a rank fails, and the process ends."""
    device = resolve_device(device_name)
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        if device.type == 'cuda' and device.index is not None:
            torch.cuda.set_device(device)
        return DistInfo(device=device)
    rank = int(os.environ['RANK'])
    local_rank = int(os.environ.get('LOCAL_RANK', rank))
    if device.type == 'cuda':
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"process {local_rank} has no GPU: {torch.cuda.device_count()} visible, "
                            f"use at most that many processes per node")
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
        backend = 'nccl'
    else:
        backend = 'gloo'
    if not dist.is_initialized():
        end_with_launcher()
        kwargs = {'device_id': device} if backend == 'nccl' else {}
        timeout = datetime.timedelta(minutes=TIMEOUT_MIN)
        dist.init_process_group(backend=backend, store=round_store(rank, world_size, timeout), rank=rank,
                                world_size=world_size, timeout=timeout, **kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def share_buffers(module):
    """Under torchrun: give every process the main process's buffers of `module` (norm layers' running
    statistics). Each process's forward updates them from its own batch; DistributedDataParallel hands out the main
    process's at the next forward anyway, so training is unchanged, but the EMA, updated between the two, would
    otherwise differ from process to process, and a resumed run (which gives every process the saved main
    process's EMA) would not evaluate as the uninterrupted one did."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    by_dtype = {}
    for buffer in module.buffers():
        by_dtype.setdefault(buffer.dtype, []).append(buffer)
    for buffers in by_dtype.values():  # (one broadcast per dtype, not one per buffer)
        flat = torch.cat([b.detach().reshape(-1) for b in buffers])
        dist.broadcast(flat, src=0)
        offset = 0
        for b in buffers:
            b.data.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info):
    if info.distributed:
        dist.barrier()


def any_true(info, flag):
    """True on every rank when `flag` is true on any rank."""
    if not info.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=info.device if dist.get_backend() == 'nccl' else 'cpu')
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(info, value):
    if not info.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64,
                     device=info.device if dist.get_backend() == 'nccl' else 'cpu')
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def shard_indices(n, info):
    """The indices this rank evaluates: every index exactly once over all ranks, no padding."""
    return list(range(info.rank, n, info.world_size))


def gather_rows(info, indices, *arrays):
    """Put together per-rank rows ([len(indices), ...] numpy arrays) in dataset order, on every rank."""
    if not info.distributed:
        return arrays
    parts = [None] * info.world_size
    dist.all_gather_object(parts, (list(indices), arrays))
    all_idx = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
    order = np.argsort(all_idx, kind='stable')
    assert len(np.unique(all_idx)) == len(all_idx), 'an index was evaluated twice'
    out = []
    for j in range(len(arrays)):
        chunks = [p[1][j] for p in parts if len(p[0])]
        out.append(np.concatenate(chunks)[order])
    return tuple(out)



def world_size():
    """The number of training processes torchrun starts (1 for a plain `python`), known before set-up."""
    return int(os.environ.get('WORLD_SIZE', '1') or 1)
