"""Unit tests of the run machinery: flag parsing and resolution, error lines, sharding, atomic files, RNG state,
plots, seeded samples, resume."""
import os

import numpy as np
import pytest
import torch

from src_files import distributed, files
from src_files.cli import flags, resolve, run
from src_files.errors import UserError
from src_files.evaluation import zsl
from src_files.inference import load as inference
from src_files.reporting import curves as plots
from src_files.settings import OptimSettings, SpeedSettings, fill_defaults
from src_files.training import checkpoint as ckpt
from src_files.training.data import SeededSamples
from src_files.training.optimisation import build_optimisation
from src_files.training.train_loop import resolve_amp


def _parser():
    p = flags.make_parser('x')
    p.add_argument('--lr', type=float, default=1e-4, help='lr')
    p.add_argument('--flag', action='store_true', default=False, help='a flag')
    p.add_argument('--fast', action=__import__('argparse').BooleanOptionalAction, default=True, help='fast')
    return p


def test_parse_args_reports_explicit_flags():
    values, explicit = flags.parse(_parser(), ['--lr', '1e-4', '--no-fast'])
    assert values == {'lr': 1e-4, 'fast': False, 'flag': False}
    assert explicit == {'lr', 'fast'}  # typed, even when equal to the default
    filled = fill_defaults(values, explicit, {'lr': 1.0, 'flag': True, 'fast': True})
    assert filled == ['flag'] and values['lr'] == 1e-4 and values['fast'] is False


def test_one_line_strips_worker_traceback():
    wrapped = ("Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               "  File \"x.py\", line 1, in f\n    raise UserError('boom')\n"
               "src_files.errors.UserError: cannot read image /a/b.jpg: broken (replace it)\n")
    assert run._one_line(wrapped) == 'cannot read image /a/b.jpg: broken (replace it)'
    assert run._one_line('two\nlines') == 'two lines'


def test_run_main_prints_one_line(capfd):
    def main(argv):
        raise UserError('something is wrong\nwith this')

    with pytest.raises(SystemExit) as exit_info:
        run.run_main(main, [])
    assert exit_info.value.code == 1
    err = capfd.readouterr().err
    assert err == 'error: something is wrong with this\n'

    def main_os(argv):
        open('/nonexistent/dir/file', 'w')

    with pytest.raises(SystemExit) as exit_info:
        run.run_main(main_os, [])
    err = capfd.readouterr().err
    assert exit_info.value.code == 1 and err.startswith('error: No such file or directory: /nonexistent/dir/file')


@pytest.mark.parametrize('n,world', [(0, 2), (1, 2), (7, 2), (10, 3), (5, 8)])
def test_shards_cover_every_index_once(n, world):
    seen = []
    for rank in range(world):
        seen += distributed.shard_indices(n, distributed.DistInfo(rank=rank, world_size=world))
    assert sorted(seen) == list(range(n))


def test_derived_seeds_never_coincide():
    """Every (purpose, epoch, rank) gets its own seed, and none is the plain --seed (the weights' stream must not
    restart as the first epoch's dropout, as `manual_seed(seed + epoch)` would do at seed 0, epoch 0)."""
    from src_files.training.seeds import PURPOSES, derive_seed
    for seed in (0, 1, 2 ** 32 - 1):
        seeds = [derive_seed(seed, p, e, r) for p in PURPOSES for e in range(30) for r in range(4)]
        assert len(set(seeds)) == len(seeds) and seed not in seeds and all(0 <= s < 2 ** 63 for s in seeds)
    assert derive_seed(3, 'dropout', 1) == derive_seed(3, 'dropout', 1)  # a function of the key only
    with pytest.raises(ValueError):
        derive_seed(0, 'weights')


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = str(tmp_path / 'latest.pth')
    files.atomic_save({'a': torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('cannot pickle')

    with pytest.raises(RuntimeError):
        files.atomic_save({'a': Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)['a'], torch.ones(2))
    assert os.listdir(tmp_path) == ['latest.pth']


def test_atomic_save_interrupted_raises_keyboard_interrupt_and_keeps_old_file(tmp_path, monkeypatch):
    # Ctrl-C inside torch.save surfaces as a RuntimeError raised while the zip writer closes; the scripts print
    # "error: interrupted" for a KeyboardInterrupt only, so atomic_save must hand on the interrupt itself.
    path = str(tmp_path / 'latest.pth')
    files.atomic_save({'a': torch.ones(2)}, path)

    def interrupted_save(obj, f):
        f.write(b'partial')
        try:
            raise KeyboardInterrupt
        finally:
            raise RuntimeError('[enforce fail at inline_container.cc] unexpected pos')

    monkeypatch.setattr(torch, 'save', interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_save({'a': torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)['a'], torch.ones(2))
    assert os.listdir(tmp_path) == ['latest.pth']


def test_prepare_output_dir_under_a_file(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(UserError, match='cannot write to the output folder'):
        files.prepare_output_dir(str(blocker / 'out'))


def test_rng_state_round_trip(tmp_path):
    import random
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    path = str(tmp_path / 'rng.pth')
    files.atomic_save({'rng': ckpt.rng_state()}, path)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(torch.load(path, weights_only=True)['rng'])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_load_latest_errors(tmp_path):
    with pytest.raises(UserError, match='nothing to resume'):
        ckpt.load_latest(str(tmp_path / 'missing.pth'))
    bad = tmp_path / 'bad.pth'
    bad.write_text('not a checkpoint')
    with pytest.raises(UserError, match='not a readable training checkpoint .it was not written by torch.save'):
        ckpt.load_latest(str(bad))
    bad.write_bytes(b'')
    with pytest.raises(UserError, match='not a readable training checkpoint .the file is empty'):
        ckpt.load_latest(str(bad))
    torch.save({'model': {}}, str(tmp_path / 'zoo.pth'))
    with pytest.raises(UserError, match='not a resumable checkpoint'):
        ckpt.load_latest(str(tmp_path / 'zoo.pth'))


def test_metrics_csv_and_plot(tmp_path):
    history = [{'epoch': 1, 'loss': 10.0, 'mAP': 20.0, 'mAP_ema': 15.0, 'best': 20.0},
               {'epoch': 2, 'loss': 8.0, 'mAP': 30.0, 'mAP_ema': 31.0, 'best': 31.0}]
    plots.write_metrics_csv(str(tmp_path / 'metrics.csv'), history)
    lines = (tmp_path / 'metrics.csv').read_text().splitlines()
    assert lines[0] == 'epoch,loss,mAP,mAP_ema,best' and lines[2] == '2,8,30,31,31'
    plots.plot_history(str(tmp_path / 'curves.png'), history, 'title')
    assert (tmp_path / 'curves.png').read_bytes()[:4] == b'\x89PNG'


def test_zsl_scores():
    targets = np.array([[1, 0, 0, 0], [0, 1, 1, 0]], np.float32)
    scores = np.array([[0.9, 0.1, 0.2, 0.3], [0.1, 0.8, 0.2, 0.7]], np.float32)
    r = zsl.zsl_scores(scores, targets)
    assert r['P@3'] == pytest.approx(50.0) and r['R@3'] == pytest.approx(100.0)
    assert 0 < r['mAP'] <= 100
    assert 'ZSL mAP' in zsl.format_zsl({'zsl': r})


def test_default_workers_share_the_cores_among_local_processes(monkeypatch):
    monkeypatch.setattr(flags.os, 'sched_getaffinity', lambda pid: set(range(64)), raising=False)
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    assert flags.default_workers() == 16          # capped
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '8')
    assert flags.default_workers() == 8           # 64 cores / 8 torchrun processes
    monkeypatch.setattr(flags.os, 'sched_getaffinity', lambda pid: {0}, raising=False)
    assert flags.default_workers() == 1           # never 0: that would load in the training process


def test_inference_compile_flags_reach_compile_model(monkeypatch, capsys):
    """validate.py / infer.py: --autotune-gemms reaches compile_model on CUDA only (speed flags change nothing on
    a CPU), together with the scope and mode."""
    run.setup_logging()  # (the scripts' log lines on stdout)
    calls = []
    monkeypatch.setattr(inference, 'compile_model', lambda model, *args, **kwargs: calls.append((args, kwargs)))
    model = torch.nn.Linear(2, 2)
    assert inference.maybe_compile(model, SpeedSettings(autotune_gemms=True)) is model  # no --compile
    assert '--autotune-gemms acts only with --compile' in capsys.readouterr().out
    speed = SpeedSettings(compile=True, compile_mode='reduce-overhead', autotune_gemms=True)
    inference.maybe_compile(model, speed)
    monkeypatch.setattr(torch.Tensor, 'device', property(lambda self: torch.device('cuda')))
    inference.maybe_compile(model, speed)
    inference.maybe_compile(model, SpeedSettings(compile=True))
    assert calls == [(('full', 'reduce-overhead'), {'gemm_autotune': False}),
                     (('full', 'reduce-overhead'), {'gemm_autotune': True}),
                     (('full', 'default'), {'gemm_autotune': False})]


@pytest.mark.parametrize('key,value,flag', [('lr', 0.0, '--lr must be positive'),
                                            ('workers', -1, '--workers must be 0 or more'),
                                            ('stop_after', -1, '--stop-after must be 0 or more'),
                                            ('ema_decay', 1.0, r'--ema-decay must be in \[0, 1\)'),
                                            ('lr', float('inf'), '--lr must be finite'),
                                            ('weight_decay', -1e-4, '--weight-decay 0 or more'),
                                            ('seed', -1, r'--seed must be in \[0, 2\*\*32\)'),
                                            ('seed', 2 ** 32, r'--seed must be in')])
def test_check_train_values_names_the_bad_flag(key, value, flag):
    good = dict(lr=1e-4, batch_size=8, epochs=2, image_size=64, workers=0, stop_after=0, ema_decay=0.9997,
                weight_decay=1e-4, seed=0)
    resolve.check_train_values(good)
    with pytest.raises(UserError, match=flag):
        resolve.check_train_values(dict(good, **{key: value}))


class _RandomDraws(torch.utils.data.Dataset):
    """Each sample is what the three RNGs an augmentation may use give (torchvision: torch; Cutout: random/numpy)."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        import random
        return torch.tensor([torch.rand(1).item(), random.random(), np.random.rand()], dtype=torch.float64)


def _draws(dataset, workers, order):
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=order, num_workers=workers)
    return {i: sample for i, sample in zip(order, torch.cat(list(loader)))}


def test_seeded_samples_draw_the_same_augmentation_whatever_the_workers_and_order():
    """A resumed run may load with another --workers (another machine): each sample's draws come from (seed,
    epoch, index) alone, and the training process's own RNGs are left where they were."""
    import random
    samples = SeededSamples(_RandomDraws(), seed=3)
    order = list(range(12))
    reference = _draws(samples, 0, order)
    for workers, shuffled in ((2, order), (0, order[::-1]), (1, order[5:] + order[:5])):
        draws = _draws(samples, workers, shuffled)
        assert all(torch.equal(draws[i], reference[i]) for i in order), (workers, shuffled)
    assert len({tuple(v.tolist()) for v in reference.values()}) == 12  # every sample draws differently
    samples.set_epoch(1)
    assert not torch.equal(_draws(samples, 0, order)[0], reference[0])  # and every epoch
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    samples[0]
    after_a_sample = (torch.rand(1).item(), random.random(), np.random.rand())
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    assert after_a_sample == (torch.rand(1).item(), random.random(), np.random.rand())


def test_loader_processes_kept_across_epochs_draw_each_epochs_augmentation():
    """The trainer keeps its loader processes from one epoch to the next (persistent_workers): they must see each
    new epoch (set in the training process) and draw what processes started for that epoch alone would. (Forked
    processes share the epoch's memory only if it is shared memory; spawned ones, as on macOS, get the tensor
    through torch's pickling, which moves it to shared memory in any case.)"""
    samples = SeededSamples(_RandomDraws(), seed=3)
    order = list(range(12))
    expected = []
    for epoch in range(3):
        samples.set_epoch(epoch)
        expected.append(torch.cat(list(torch.utils.data.DataLoader(samples, batch_size=4, sampler=order))))
    loader = torch.utils.data.DataLoader(samples, batch_size=4, sampler=order, num_workers=2, persistent_workers=True,
                                         multiprocessing_context='fork')
    for epoch in range(3):
        samples.set_epoch(epoch)
        assert torch.equal(torch.cat(list(loader)), expected[epoch]), epoch
    assert not torch.equal(expected[0], expected[1])


def test_a_new_run_does_not_overwrite_a_finished_one(tmp_path):
    assert ckpt.refuse_to_overwrite(str(tmp_path / 'new')) is None  # no folder yet
    (tmp_path / 'run').mkdir()
    ckpt.refuse_to_overwrite(str(tmp_path / 'run'))  # an empty folder (a run that failed before its first epoch)
    (tmp_path / 'run' / ckpt.BEST).write_bytes(b'x')
    with pytest.raises(UserError, match='already holds a run .* continue it with --resume'):
        ckpt.refuse_to_overwrite(str(tmp_path / 'run'))
    # --resume auto: a best.pth alone (stopped while saving epoch 1) is started over, with a note
    assert 'starting that run over' in ckpt.refuse_to_overwrite(str(tmp_path / 'run'), True)
    (tmp_path / 'run' / ckpt.LATEST).write_bytes(b'x')
    with pytest.raises(UserError, match='already holds a run'):
        ckpt.refuse_to_overwrite(str(tmp_path / 'run'), True)


def test_resume_takes_the_runs_settings_unless_given_again(tmp_path):
    """--amp is the run's too: a run started with the published fp16 + loss scaling must not resume in bf16."""
    saved = dict(amp='fp16', lr=1e-3, data='/data/coco', workers=8)
    files.atomic_save({'model': {}, 'ema': {}, 'optimizer': {}, 'scheduler': {}, 'epoch': 1, 'args': saved},
                      str(tmp_path / ckpt.LATEST))
    values = dict(resume='', output_dir=str(tmp_path), amp='auto', lr=1e-4, data='data/coco', workers=2)
    resolve.resume_state(values, explicit={'resume', 'output_dir'})
    assert (values['amp'], values['lr'], values['data']) == ('fp16', 1e-3, '/data/coco')
    assert values['workers'] == 2  # this machine's; the augmentation does not depend on it (SeededSamples)
    values = dict(resume='', output_dir=str(tmp_path), amp='bf16', lr=1e-4, data='data/coco', workers=2)
    resolve.resume_state(values, explicit={'resume', 'output_dir', 'amp'})
    assert values['amp'] == 'bf16'


def test_fp16_training_on_a_cpu_gets_a_note(capsys):
    assert resolve_amp('fp16', torch.device('cpu'), warn=True) == 'fp16'
    assert 'very slow' in capsys.readouterr().out
    assert resolve_amp('auto', torch.device('cpu'), warn=True) == 'off' and capsys.readouterr().out == ''


@pytest.mark.parametrize('steps', [1, 4, 5, 6, 10])
def test_one_cycle_schedule_builds_for_short_runs(steps):
    """torch's OneCycleLR divides by zero for exactly 5 steps at pct_start 0.2; every short run must step."""
    model = torch.nn.Linear(3, 2)
    parts = build_optimisation(model, OptimSettings(epochs=1, lr=1e-3, weight_decay=1e-4, ema_decay=0.9), steps)
    lrs = []
    for _ in range(steps):
        parts.optimizer.step()
        parts.scheduler.step()
        lrs.append(parts.scheduler.get_last_lr()[0])
    assert all(np.isfinite(lrs)) and max(lrs) <= 1e-3 + 1e-12
