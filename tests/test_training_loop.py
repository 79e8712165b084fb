"""The trainer's step against the published training loop written out by hand.

Same initial weights, same batches in the same order, dropout off, float64: after a few steps the engine
(`build_trainables` + `train_one_epoch`) and the plain loop must hold the same weights, the same EMA and the
same learning rate. The plain loop here is independent of the engine: its own parameter groups, Adam, OneCycle
and EMA arithmetic, as the published train.py has them.
"""
import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src_files.settings import OptimSettings
from src_files.training.optimisation import build_optimisation
from src_files.training.train_loop import Precision, train_one_epoch
from src_files.loss_functions.losses import AsymmetricLoss
from small_models import small_tresnet

pytestmark = pytest.mark.slow  # (the whole module: `pytest -m "not slow"` leaves it out)

LR, WEIGHT_DECAY, EMA_DECAY, EPOCHS = 1e-3, 1e-4, 0.9, 2


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    return model


def _model_and_data(steps=3, batch=4, size=32, classes=5):
    """A TResNet with one block per stage and a narrow head (small_tresnet: an Adam step in float64 costs time
    per parameter, and what is compared does not depend on the model's size), and `steps` batches."""
    torch.manual_seed(0)
    model = _no_dropout(small_tresnet(classes, layers=(1, 1, 1, 1), decoder_embedding=64)).double()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(steps * batch, 3, size, size, generator=g, dtype=torch.float64)
    targets = (torch.rand(steps * batch, classes, generator=g) < 0.4).double()
    return model, DataLoader(TensorDataset(images, targets), batch_size=batch, shuffle=False)


def _plain_loop(model, loader, pct_start=0.2):
    """The published loop: Adam on (no decay: biases and 1-d) / (decay: the rest), OneCycle per batch, ASL, EMA."""
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and not n.endswith('.bias')]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (p.ndim <= 1 or n.endswith('.bias'))]
    optimizer = torch.optim.Adam([{'params': no_decay, 'weight_decay': 0.0},
                                  {'params': decay, 'weight_decay': WEIGHT_DECAY}], lr=LR, weight_decay=0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, steps_per_epoch=len(loader),
                                                    epochs=EPOCHS, pct_start=pct_start)
    criterion = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True)
    ema = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    for images, targets in loader:
        loss = criterion(model(images).float(), targets)
        model.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k] = EMA_DECAY * ema[k] + (1 - EMA_DECAY) * v if v.is_floating_point() else v.clone()
    return ema, scheduler.get_last_lr()[0]


def _max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_engine_steps_equal_the_plain_loop():
    model, loader = _model_and_data()
    plain_model, engine_model = model, copy.deepcopy(model)
    plain_ema, plain_lr = _plain_loop(plain_model, loader)

    parts = build_optimisation(engine_model, OptimSettings(epochs=EPOCHS, lr=LR, weight_decay=WEIGHT_DECAY,
                                                         ema_decay=EMA_DECAY), len(loader))
    stats = train_one_epoch(engine_model, parts, loader, Precision(torch.device('cpu')))
    assert stats.steps == len(loader) == 3 and stats.images == 12
    assert parts.scheduler.get_last_lr()[0] == plain_lr
    assert _max_diff(engine_model.state_dict(), plain_model.state_dict()) < 1e-12
    assert _max_diff(parts.ema.module.state_dict(), plain_ema) < 1e-12

    # The comparison is sharp: the plain loop with another warm-up share moves the weights measurably.
    moved, _ = _model_and_data()
    _plain_loop(moved, loader, pct_start=0.3)
    assert _max_diff(moved.state_dict(), plain_model.state_dict()) > 1e-6


def test_seed_study_runs_the_plain_loop_and_summarises(tmp_path):
    """benchmarks/seed_study.py: seed lists, one epoch of its plain loop on a tiny set, the per-runner summary."""
    import argparse
    import sys
    sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1] / 'benchmarks'))
    import seed_study
    from src_files.data import demo_coco_root
    assert seed_study.parse_seeds('0-2,5') == [0, 1, 2, 5]
    args = argparse.Namespace(data=demo_coco_root(str(tmp_path), num_train=16, num_val=8), model_name='tresnet_m',
                              image_size=32, epochs=1, batch_size=8, lr=1e-3, workers=0, device='cpu')
    curve = seed_study.plain_loop(args, seed=0)
    assert len(curve) == 1 and 0 < curve[0] <= 100
    published = seed_study.plain_loop(args, seed=0, published_model=True)  # the 'published' runner
    assert len(published) == 1 and 0 < published[0] <= 100
    text = seed_study.summary([{'runner': 'plain', 'best': 60.0}, {'runner': 'plain', 'best': 64.0},
                               {'runner': 'engine', 'best': 61.0}])
    assert 'plain   n= 2 mean  62.00 sd  2.83' in text and 'engine  n= 1 mean  61.00' in text


def test_study_driver_records_each_run_once_and_keeps_finished_runs(tmp_path, capsys):
    """seed_study.run_study (also single_label_check's): one JSON line per finished run; a second call with the
    same file runs only what is missing; a runner that fails leaves the runs before it in the file."""
    import argparse
    import json
    import sys
    sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1] / 'benchmarks'))
    import seed_study
    calls = []

    def runner(name, fail_at=None):
        def run(args, seed):
            if seed == fail_at:
                raise RuntimeError('stopped')
            calls.append((name, seed))
            return [10.0 + seed, 20.0 + seed]
        return run

    args = argparse.Namespace(out=str(tmp_path), seeds='0-2')
    with pytest.raises(RuntimeError):
        seed_study.run_study(args, {'a': runner('a'), 'b': runner('b', fail_at=1)})
    assert calls == [('a', 0), ('b', 0), ('a', 1)]
    seed_study.run_study(args, {'a': runner('a'), 'b': runner('b')})
    assert calls[3:] == [('b', 1), ('a', 2), ('b', 2)]
    rows = [json.loads(line) for line in (tmp_path / 'results.jsonl').read_text().splitlines()]
    assert [(r['runner'], r['seed'], r['best']) for r in rows] == [
        ('a', 0, 20.0), ('b', 0, 20.0), ('a', 1, 21.0), ('b', 1, 21.0), ('a', 2, 22.0), ('b', 2, 22.0)]
    assert 'a       n= 3 mean  21.00 sd  1.00' in capsys.readouterr().out


def test_one_training_step_runs_the_machinery_of_at_most_four_files(capsys):
    """tools/trace_step.py traces one step as train.py builds it: the loop, the loss and the EMA (and, for A2,
    the schedule wrapper) outside the network's own layers."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parent.parent / 'tools' / 'trace_step.py'
    spec = importlib.util.spec_from_file_location('trace_step', path)
    trace_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trace_step)
    assert trace_step.main(['--image-size', '32']) == 0
    out = capsys.readouterr().out
    step = out.split('the network')[0]
    assert 'src_files/training/train_loop.py' in step and 'src_files/loss_functions/losses.py' in step
    assert 'src_files/helper_functions/ema.py' in step and 'src_files/models/tresnet/tresnet.py' in out
    assert trace_step.main(['--image-size', '32', '--max-files', '2']) == 1  # the check can fail
