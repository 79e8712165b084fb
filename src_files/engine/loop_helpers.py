"""Bookkeeping beside the training step: the running loss with its non-finite check, and compile time."""
import logging
import time

import torch

from src_files import distributed
from src_files.models.compile import compiled_graph_count

LOG = logging.getLogger(__name__)


class NonFiniteStep(Exception):
    """The loss of step `step` (0-based, within the epoch) was `value` (inf or nan)."""

    def __init__(self, step, value):
        super().__init__(f'non-finite loss {value} at step {step}')
        self.step, self.value = step, value


class LossMeter:
    """Collects the step losses on the device and looks at them every `sync_every` steps (one host sync)."""

    def __init__(self, info, sync_every):
        self.info, self.sync_every = info, sync_every
        self.pending, self.total, self.count = [], 0.0, 0

    def add(self, loss):
        self.pending.append(loss.detach())

    def due(self, last_step):
        return len(self.pending) >= self.sync_every or (last_step and self.pending)

    def flush(self, step):
        """Add the pending losses (the last of them is step `step`); raise NonFiniteStep on any rank's inf/nan."""
        values = torch.stack(self.pending).float().cpu()
        bad = ~torch.isfinite(values)
        if distributed.any_true(self.info, bool(bad.any())):
            first = int(bad.nonzero()[0, 0]) if bad.any() else 0
            value = values[first].item() if bad.any() else float('nan')
            raise NonFiniteStep(step - len(self.pending) + 1 + first, value)
        self.total += float(values.double().sum())
        self.count += len(self.pending)
        done = len(self.pending)
        self.pending = []
        return done

    @property
    def mean(self):
        return self.total / max(self.count, 1)


class CompileClock:
    """Times the steps that compiled (the first one, or one with a new batch size) so images/s leaves them out,
    and says what happened on the first one."""

    def __init__(self, args, info, enabled):
        self.args, self.info, self.enabled = args, info, enabled
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
            if self.args.compile_scope == 'full' and not self.info.distributed and graphs > 1:
                LOG.info(f"warning: torch.compile split the model into {graphs} graphs (graph breaks), which costs "
                      f"most of its speed; `python benchmarks/graph_breaks.py` shows where")
        else:
            LOG.info(f"torch.compile: compiled again for a batch of {batch_size} ({took:.1f} s, left out of "
                  f"images/s)")
