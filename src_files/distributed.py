"""Process-group setup for `torchrun` (NCCL on GPUs, gloo on CPUs) and the few collectives the loops need.

A plain `python train.py` is a world of one process and never touches torch.distributed.
"""
import datetime
import os
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


def setup(device_name):
    """Detect torchrun (WORLD_SIZE/RANK/LOCAL_RANK), join the process group and pick this process's device."""
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
        kwargs = {'device_id': device} if backend == 'nccl' else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30), **kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


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
