"""Speed switches of a training run, beside the model they act on: the device and memory format, the head and
norm implementations, torch.compile, and DistributedDataParallel. None of them changes the math of a step."""
import logging
import time

import torch

from src_files.errors import UserError
from src_files.ml_decoder.ml_decoder import set_head_impl
from src_files.models.compile import compile_model, compiled_graph_count, uses_cuda_graphs
from src_files.models.tresnet import set_memory_efficient

LOG = logging.getLogger(__name__)


def prepare_model(model, speed, device, channels_last):
    """The model on its device and memory format, with the chosen head and norm implementations."""
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = bool(speed.cudnn_benchmark)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    set_head_impl(model, speed.head_impl)
    set_memory_efficient(model, speed.lowmem)
    return model


def wrap_for_training(model, speed, info):
    """-> (the module the steps call, whether it records CUDA graphs): compiled and/or wrapped for DDP."""
    cuda_graphs = speed.compile and uses_cuda_graphs(speed.compile_mode)
    if cuda_graphs and info.distributed:
        raise UserError(f"--compile-mode {speed.compile_mode} records CUDA graphs, which this trainer supports in a "
                        f"single process only: use --compile-mode default with torchrun")
    if speed.compile and speed.compile_scope == 'regional':
        compile_model(model, 'regional', speed.compile_mode)  # in place: evaluation of `model` runs compiled too
    train_model = model
    if info.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[info.device.index]
                                                                if info.device.type == 'cuda' else None)
    if speed.compile and speed.compile_scope == 'full':
        train_model = compile_model(train_model, 'full', speed.compile_mode)
    return train_model, cuda_graphs


class CompileClock:
    """Times the steps that compiled (the first one, or one with a new batch size) so images/s leaves them out,
    and says what happened on the first one."""

    def __init__(self, speed, info):
        self.speed, self.info, self.enabled = speed, info, speed.compile
        self.graphs_before = compiled_graph_count()
        self.graphs_seen = self.graphs_before
        self.seconds = 0.0
        self.first_step = True

    def start_epoch(self):
        self.graphs_seen = compiled_graph_count()  # (evaluation may have compiled graphs of its own)
        self.seconds = 0.0

    def after_step(self, step_start, batch_size):
        first_step, self.first_step = self.first_step, False
        if not self.enabled or not (first_step or compiled_graph_count() != self.graphs_seen):
            return
        if self.info.device.type == 'cuda':
            torch.cuda.synchronize(self.info.device)
        took = time.time() - step_start
        self.seconds += took
        self.graphs_seen = compiled_graph_count()
        if not self.info.is_main:
            return
        if first_step:
            graphs = self.graphs_seen - self.graphs_before
            LOG.info(f"torch.compile: first step took {took:.1f} s (compilation; left out of images/s), {graphs} "
                     f"graph(s)")
            # (DDP's compiler splits the graph at its gradient buckets on purpose.)
            if self.speed.compile_scope == 'full' and not self.info.distributed and graphs > 1:
                LOG.info(f"warning: torch.compile split the model into {graphs} graphs (graph breaks), which costs "
                         f"most of its speed; `python benchmarks/graph_breaks.py` shows where")
        else:
            LOG.info(f"torch.compile: compiled again for a batch of {batch_size} ({took:.1f} s, left out of "
                     f"images/s)")
