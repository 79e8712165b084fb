"""CPU smoke runs of the benchmark scripts (tiny sizes): they run end to end and print their tables. The scripts
run in this process (run_script: as `python SCRIPT ARGS` from benchmarks/ would, without the start-up of a new
Python, torch and dynamo: seconds a run)."""
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # (the whole module: `pytest -m "not slow"` leaves it out)

BENCH = Path(__file__).resolve().parent.parent / 'benchmarks'
TOOLS = BENCH.parent / 'tools'  # development tools that patch PyTorch internals (tools/inductor_traffic.py)
TINY = ['--device', 'cpu', '--model-name', 'tresnet_m', '--image-size', '64', '--batch-size', '2',
        '--iters', '1', '--warmup', '0']


def run_script(script, args, monkeypatch, capsys):
    """benchmarks/SCRIPT run as `python SCRIPT ARGS` in benchmarks/ would, in this process -> (exit status, stdout,
    stderr). An exception other than SystemExit is raised as it is (the traceback a new process would print)."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.chdir(BENCH)
    monkeypatch.setattr(sys, 'argv', [script] + [str(a) for a in args])
    capsys.readouterr()
    code = 0
    try:
        runpy.run_path(str(BENCH / script), run_name='__main__')
    except SystemExit as exit_info:  # sys.exit(n), or a message (status 1, as Python exits with)
        code = exit_info.code if isinstance(exit_info.code, int) or exit_info.code is None else 1
    out, err = capsys.readouterr()
    return code or 0, out, err


@pytest.mark.parametrize('script,extra,rows', [
    ('bench_train.py', ['--modes', 'published,fast+lowmem', '--profile', '1', '--profile-dir', '{tmp}'],
     ['published', 'fast+lowmem']),
    # --profile-below: no fast mode here is a millionth of the published speed, so none is profiled.
    # fast+freeze: the compiled mode whose first step builds the fewest kernels on a CPU (frozen weights: inductor
    # folds the activations and residual additions into its convolutions), about half of fast+regional's
    ('bench_infer.py', ['--modes', 'published,fast,fast+freeze', '--profile', '1', '--profile-below', '1e-6'],
     ['published', 'fast', 'fast+freeze']),
])
def test_benchmark_script_runs_on_cpu(script, extra, rows, tmp_path, monkeypatch, capsys):
    extra = [arg.format(tmp=tmp_path) for arg in extra]
    code, stdout, stderr = run_script(script, [*TINY, *extra], monkeypatch, capsys)
    assert code == 0, stderr[-2000:]
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(('# train tresnet', '# infer tresnet')))
    table = [line for line in lines[start:] if line.startswith('| ')]
    assert [line.split('|')[1].strip() for line in table[1:]] == rows
    graphs = {line.split('|')[1].strip(): line.split('|')[7].strip() for line in table[1:]}
    from common import parse_mode
    for mode in rows:  # eager modes compile nothing; compiled ones report how many graphs they built
        assert int(graphs[mode]) >= 1 if parse_mode(mode)['compile'] else graphs[mode] == '-', graphs
    if script == 'bench_infer.py':  # fp32 on the CPU: every mode computes the published logits
        diffs = dict(re.findall(r'logits (\S+) vs published: relative difference (\S+)', stdout))
        assert set(diffs) == set(rows) - {'published'} and max(map(float, diffs.values())) < 1e-4, diffs
    if '--profile-below' in extra:
        assert 'profiled steps' not in stdout
    elif '--profile' in extra:  # the profile of the fast mode: time by category, adding up to the busy time
        assert '# train fast+lowmem: 1 profiled steps' in stdout
        shares = [float(line.split('|')[3].strip().rstrip('%')) for line in stdout.splitlines()
                  if line.startswith('| ') and line.strip().endswith('% |')]
        assert len(shares) >= 3 and abs(sum(shares) - 100) < 1, shares
        # --profile-dir: every op of the profile, in a CSV whose times add up to the printed busy time
        busy = float(re.search(r'profiled steps, \S+ ms wall per step, (\S+) ms', stdout).group(1))
        table = (tmp_path / 'train_tresnet_m_64_b2_fast_lowmem.csv').read_text().splitlines()
        assert table[0] == 'ms_per_step,category,kernel' and len(table) > 13  # more than the top 12 printed
        assert abs(sum(float(row.split(',')[0]) for row in table[1:]) - busy) < 0.05 + 0.01 * busy


def test_profile_below_profiles_only_the_fast_modes_that_miss_the_ratio():
    sys.path.insert(0, str(BENCH))
    from argparse import Namespace

    from common import wants_profile
    every, missed = Namespace(profile=3, profile_below=0), Namespace(profile=3, profile_below=2.0)
    assert wants_profile(every, True, 500.0, 100.0) and not wants_profile(every, False, 100.0, 100.0)
    assert wants_profile(missed, True, 199.0, 100.0) and not wants_profile(missed, True, 200.0, 100.0)
    assert wants_profile(missed, True, 500.0, None)  # no published rate measured before it: profiled
    assert not wants_profile(Namespace(profile=0, profile_below=2.0), True, 1.0, 100.0)


def test_mode_grammar():
    sys.path.insert(0, str(BENCH))
    from common import compile_config, parse_mode
    mode = parse_mode('fast+lowmem+regional')
    assert mode['lowmem'] and mode['compile'] and mode['scope'] == 'regional' and mode['compile_mode'] is None
    assert parse_mode('fast+cudagraphs')['compile_mode'] == 'reduce-overhead'
    assert parse_mode('fast+autotune')['compile_mode'] == 'max-autotune-no-cudagraphs'
    assert parse_mode('fast+regional+autotune+cudagraphs')['compile_mode'] == 'max-autotune'
    assert parse_mode('fast+budget0.5')['memory_budget'] == 0.5
    assert parse_mode('fast+freeze')['freeze'] and parse_mode('fast+freeze')['compile']
    assert parse_mode('fast+cdtune')['cdtune'] and parse_mode('fast+cdtune')['compile']
    assert parse_mode('fast+regional+stock')['stock'] and not parse_mode('fast+regional')['stock']
    assert parse_mode('fast+cudagraphs+mmtune')['mmtune'] and not parse_mode('fast+cudagraphs')['mmtune']
    assert parse_mode('fast+cudagraphs+mmtune')['compile_mode'] == 'reduce-overhead'
    import torch._inductor.config as inductor_config
    with compile_config(parse_mode('fast+cdtune')):
        assert inductor_config.coordinate_descent_tuning and not inductor_config.freezing
    with compile_config(parse_mode('fast+freeze')):
        assert inductor_config.freezing and not inductor_config.coordinate_descent_tuning
    assert parse_mode('fast+bf16')['half'] == 'bf16' and not parse_mode('fast+bf16')['compile']
    for bad in ('fast+turbo', 'published+compile', 'slow'):
        with pytest.raises(SystemExit):
            parse_mode(bad)


def test_autotune_seconds_adds_inductors_kernel_choice_timers(monkeypatch, capsys):
    """The autotuning part of a compiled mode's first step: compiling and timing template choices, and timing fused
    kernels against unfused ones; other compile phases are left out."""
    sys.path.insert(0, str(BENCH))
    import torch._dynamo.utils
    from common import autotune_seconds, print_progress
    monkeypatch.setattr(torch._dynamo.utils, 'compilation_time_metrics', {
        'addmm_template_precompiling': [2.0, 1.0], 'addmm_template_autotuning': [0.5], 'benchmark_fused_nodes': [0.25],
        'benchmark_codegened_module': [0.125], 'Scheduler.codegen': [9.0], 'compile_fx_inner': [30.0]})
    assert autotune_seconds() == 3.875
    print_progress('fast+mmtune', dict(images_per_s=1.0, peak_gib=1.0, first_step_s=40.0, graphs=1, autotune_s=3.875))
    assert 'first step 40.0 s, compiled graphs 1, autotuning 3.9 s of the first step' in capsys.readouterr().out


def test_kernel_categories():
    """Kernel names seen in the H100 profiles land in the category the tables name: Triton kernels by kind first
    (their names list the convolution/norm ops they were fused from), cuBLAS's nvjet kernels as matmuls."""
    sys.path.insert(0, str(BENCH))
    from profile_summary import categorize
    cases = {
        'triton_poi_fused__native_batch_norm_legit_abs_add_convolution_backward_leaky_relu_mul':
            'Triton pointwise (norm, act, residual)',
        'triton_red_fused_add_native_batch_norm_backward_threshold_backward_47': 'Triton reductions (norm statistics)',
        'sm90_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64': 'convolution',
        'nvjet_sm90_hsh_128x256_64x4_2x1_v_ssched_bz_coopA_TNN': 'matmul',
        'void at::native::batch_norm_collect_statistics_channels_last_kernel<at::native::Var>': 'batch norm',
        'void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor>': 'optimizer / EMA (multi-tensor)',
    }
    assert {name: categorize(name) for name in cases} == cases


def test_profile_counts_kernels_not_annotations():
    """The optimizer's user annotation shows on the GPU timeline around its kernels: it must not count again."""
    sys.path.insert(0, str(BENCH))
    from types import SimpleNamespace
    from profile_summary import is_kernel
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    event = lambda key, device, annotation=False: SimpleNamespace(key=key, device_type=device,  # noqa: E731
                                                                  is_user_annotation=annotation)
    assert is_kernel(event('nvjet_sm90_hsh_128x256_64x4_2x1_v_bz_coopA_TNN', cuda), cuda=True)
    assert not is_kernel(event('Optimizer.step#Adam.step', cuda), cuda=True)
    assert not is_kernel(event('train step', cuda, annotation=True), cuda=True)
    assert not is_kernel(event('aten::convolution', cpu), cuda=True)
    assert is_kernel(event('aten::convolution', cpu), cuda=False) and not is_kernel(event('Conv', cpu), cuda=False)


def test_head_benchmark_runs_on_cpu(monkeypatch, capsys):
    code, stdout, stderr = run_script('bench_head.py', ['--device', 'cpu', '--batch-size', '1', '--iters', '1',
                                                        '--warmup', '0', '--cases', '0'], monkeypatch, capsys)
    assert code == 0, stderr[-2000:]
    assert '80 classes, 14x14' in stdout and 'x |' in stdout


def test_memory_benchmark_counts_less_for_the_memory_saving_norms(monkeypatch, capsys):
    code, stdout, stderr = run_script('bench_memory.py', ['--model-name', 'tresnet_m', '--image-size', '64',
                                                          '--batch-size', '3'], monkeypatch, capsys)
    assert code == 0, stderr[-2000:]
    mib = {line.split('|')[1].strip(): float(line.split('|')[2]) for line in stdout.splitlines()
           if line.startswith('| ') and line.split('|')[2].strip().replace('.', '').isdigit()}
    assert set(mib) == {'published', 'fast', 'fast+lowmem'}
    assert mib['fast+lowmem'] < 0.9 * mib['fast']  # one tensor per norm fewer (about -18% at this size)


def test_compiled_memory_count_sees_the_recomputed_squeeze_excite_product():
    """What inductor's partitioner keeps for one Bottleneck under bf16 autocast (no code generated): the
    memory-saving block keeps two [N, planes, H, W] tensors fewer - the first norm's input (the norm recovers
    it from its output) and the squeeze-excite product (recomputed in backward: the compiler must not merge
    the backward's product with the forward's, or it keeps it again)."""
    sys.path.insert(0, str(BENCH))
    from bench_memory import saved_bytes_compiled
    from common import parse_mode
    from src_files.models.tresnet import Bottleneck, set_memory_efficient

    torch.manual_seed(0)
    x = torch.randn(3, 64, 12, 12).bfloat16().requires_grad_()  # a block's input is bf16 under autocast
    kept = {}
    for lowmem in (False, True):
        block = set_memory_efficient(Bottleneck(64, 16, use_se=True).train(), lowmem)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            activations, other, graphs = saved_bytes_compiled(block, x, 3, parse_mode('fast+compile'))
        assert graphs == 1  # no graph breaks
        kept[lowmem] = activations
    planes_tensor = 3 * 16 * 12 * 12 * 2  # bf16
    assert kept[True] <= kept[False] - 2 * planes_tensor, kept


def test_compiled_memory_count_sees_every_copy_of_a_block_compiled_block_by_block():
    """Block by block (+regional), one compiled graph serves every copy of a block and each block's input comes
    from the block before: the count must still see what each call keeps, as much as the whole-model compile
    keeps for three identical Bottlenecks (inductor's partitioner, no code generated)."""
    sys.path.insert(0, str(BENCH))
    from bench_memory import saved_bytes_compiled
    from common import parse_mode
    from src_files.models.tresnet import Bottleneck, set_memory_efficient

    torch.manual_seed(0)
    x = torch.randn(3, 64, 12, 12).bfloat16()
    counts = {}
    for mode in ('fast+lowmem+compile', 'fast+lowmem+regional'):
        blocks = torch.nn.Sequential(*[Bottleneck(64, 16, use_se=True) for _ in range(3)]).train()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            counts[mode] = saved_bytes_compiled(set_memory_efficient(blocks), x, 3, parse_mode(mode))
    (whole, _, whole_graphs), (regional, _, regional_graphs) = counts.values()
    assert whole_graphs == 1 and regional_graphs == 3  # first, middle and last block differ (ReLU hand-off)
    planes_tensor = 3 * 16 * 12 * 12 * 2  # bf16: a block keeps several of these
    assert whole > 3 * 4 * planes_tensor and abs(regional - whole) <= 0.05 * whole, counts


def test_norm_benchmark_runs_on_cpu(monkeypatch, capsys):
    code, stdout, stderr = run_script('bench_norm.py', ['--device', 'cpu', '--shape', '2,8,8,8', '--iters', '1',
                                                        '--warmup', '0'], monkeypatch, capsys)
    assert code == 0, stderr[-2000:]
    assert '| standard ' in stdout and '| memory-saving ' in stdout


def test_graph_break_check_passes_the_model_and_reports_a_break(monkeypatch, capsys):
    """benchmarks/graph_breaks.py: the fast and --lowmem training forwards are one graph each (exit status 0);
    a planted break in the norm layer is counted, with the line it happened on, and gives exit status 1."""
    import torch._dynamo
    from src_files.models.tresnet.layers.norm_act import NormAct2d
    args = ['--device', 'cpu', '--model-name', 'tresnet_m', '--image-size', '64', '--batch-size', '2']
    code, stdout, stderr = run_script('graph_breaks.py', args + ['--modes', 'fast+lowmem'], monkeypatch, capsys)
    assert code == 0, stderr[-2000:]
    assert '# fast+lowmem: 1 graphs, 0 breaks' in stdout
    forward = NormAct2d.forward
    monkeypatch.setattr(NormAct2d, 'forward', lambda self, x: (torch._dynamo.graph_break(), forward(self, x))[1])
    code, stdout, stderr = run_script('graph_breaks.py', args + ['--modes', 'fast'], monkeypatch, capsys)
    torch._dynamo.reset()  # (the graphs of the planted break)
    assert code == 1, stderr[-2000:]
    assert '# fast: ' in stdout and ' 0 breaks' not in stdout
    assert 'break at ' in stdout


def test_traffic_floor_counts_the_tensors_of_a_block(monkeypatch, capsys):
    """One Bottleneck with squeeze-excite on an 8x8 map: its three norm outputs (16 + 16 + 64 channels), its
    output (64) and its squeeze-excite product (16), counted by hand."""
    sys.path.insert(0, str(BENCH))
    from bench_traffic import count_elements, least_bytes
    from src_files.models.tresnet import Bottleneck

    block = Bottleneck(64, 16, use_se=True).train()
    counts = count_elements(block, torch.zeros(1, 64, 8, 8))
    assert counts == {'norm': (16 + 16 + 64) * 64, 'block': 64 * 64, 'se': 16 * 64}
    assert block.training  # left as it was
    # training: 8 passes per norm element, 3 per block element, 7 per squeeze-excite element; 2 bytes each
    assert least_bytes(counts, batch_size=2, training=True) == (8 * 96 + 3 * 64 + 7 * 16) * 64 * 2 * 2
    code, stdout, stderr = run_script('bench_traffic.py', ['--model-name', 'tresnet_m', '--image-size', '64'],
                                      monkeypatch, capsys)
    assert code == 0, stderr[-2000:]
    assert '| training (fwd + bwd)' in stdout and '| inference (folded norms)' in stdout


def test_kernel_bytes_reads_buffers_and_accesses_from_inductors_code():
    """A made-up inductor module: a reduction that reads a bf16 [4, 8, 2, 2] input in two loops, a float32
    per-channel vector once and writes a bf16 output once (2 * 256 + 32 + 256 bytes), launched twice, then a
    pooling kernel."""
    sys.path.insert(0, str(TOOLS))
    from inductor_traffic import kernel_bytes
    source = """
triton_red_fused_add_0 = async_compile.triton('triton_red_fused_add_0', '''
@triton_heuristics.reduction(
    triton_meta={'signature': {'in_ptr0': '*bf16', 'in_ptr1': '*fp32', 'out_ptr0': '*bf16', 'xnumel': 'i32', 'XBLOCK': 'constexpr'}, 'device': 0},
)
@triton.jit
def triton_red_fused_add_0(in_ptr0, in_ptr1, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    for r0_offset in tl.range(0, r0_numel, R0_BLOCK):
        tmp0 = tl.load(in_ptr0 + (x0 + 8*r0_1), xmask)
    tmp1 = tl.load(in_ptr1 + (x0), xmask)
    for r0_offset in tl.range(0, r0_numel, R0_BLOCK):
        tmp2 = tl.load(in_ptr0 + (x0 + 8*r0_1), xmask)
        tl.store(out_ptr0 + (x0 + 8*r0_1), tmp2 + tmp1, xmask)
''', device_str='cuda')

class Runner:
    def call(self, args):
        arg0_1, arg1_1 = args
        assert_size_stride(arg0_1, (4, 8, 2, 2), (32, 1, 16, 8))
        assert_size_stride(arg1_1, (8, ), (1, ))
        buf0 = empty_strided_cuda((4, 8, 2, 2), (32, 1, 16, 8), torch.bfloat16)
        triton_red_fused_add_0.run(arg0_1, arg1_1, buf0, 8, 16, stream=raw_stream0)
        buf1 = buf0; del buf0  # reuse
        triton_red_fused_add_0.run(buf1, arg1_1, buf1, 8, 16, stream=raw_stream0)
        buf2 = empty_strided_cuda((4, 8, 1, 1), (8, 1, 8, 8), torch.float32)
        triton_poi_fused_avg_pool2d_1.run(buf1, buf2, 32, stream=raw_stream0)
"""
    pooling = """
triton_poi_fused_avg_pool2d_1 = async_compile.triton('triton_poi_fused_avg_pool2d_1', '''
@triton_heuristics.pointwise(
    triton_meta={'signature': {'in_ptr0': '*bf16', 'out_ptr0': '*fp32', 'xnumel': 'i32', 'XBLOCK': 'constexpr'}},
)
@triton.jit
def triton_poi_fused_avg_pool2d_1(in_ptr0, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    tmp0 = tl.load(in_ptr0 + (2*x0), xmask)
    tmp1 = tl.load(in_ptr0 + (1 + 2*x0), xmask)
    tl.store(out_ptr0 + (x0), (tmp0 + tmp1) / 2, xmask)
''', device_str='cuda')
"""
    # the pooling window's two loads are one pass over its input: 256 bytes read, 32 * 4 written
    assert kernel_bytes(pooling + source) == [('triton_red_fused_add_0', 2 * 256 + 32 + 256)] * 2 + [
        ('triton_poi_fused_avg_pool2d_1', 256 + 128)]


def test_library_bytes_counts_each_operand_of_cudnn_and_cublas_calls_once():
    """A convolution reads its input and weight and writes its output; a convolution's backward reads the output
    gradient twice and the input once, and writes the input gradient; a matrix product through a view counts the
    view's elements. 2 bytes per element."""
    sys.path.insert(0, str(TOOLS))
    from inductor_traffic import library_bytes
    source = """
class Runner:
    def call(self, args):
        arg0_1, arg1_1, arg2_1 = args
        assert_size_stride(arg0_1, (2, 4, 3, 3), (36, 1, 12, 4))
        assert_size_stride(arg1_1, (8, 4, 1, 1), (4, 1, 4, 4))
        assert_size_stride(arg2_1, (2, 8, 3, 3), (72, 1, 24, 8))
        # Source Nodes: [conv], Original ATen: [aten.convolution_backward]
        buf0 = extern_kernels.convolution(arg0_1, arg1_1, stride=(1, 1), padding=(0, 0), bias=None)
        assert_size_stride(buf0, (2, 8, 3, 3), (72, 1, 24, 8))
        buf1 = torch.ops.aten.convolution_backward.default(arg2_1, arg0_1, arg1_1, None, (1, 1), [True, True, False])
        buf2 = empty_strided_cuda((18, 4), (4, 1), torch.float16)
        extern_kernels.mm(reinterpret_tensor(buf0, (18, 8), (8, 1), 0), reinterpret_tensor(arg1_1, (8, 4), (1, 8), 0), out=buf2)
"""
    assert library_bytes(source) == [('convolution', 2 * (72 + 32 + 144)),
                                     ('convolution_backward', 2 * (2 * 144 + 2 * 72)), ('mm', 2 * (144 + 32 + 72))]


def test_benchmark_help_shows_the_defaults_and_only_the_flags_a_script_reads(capsys, monkeypatch):
    import runpy
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv('COLUMNS', '200')  # (no line breaks inside the defaults)
    for script in ('bench_train.py', 'bench_infer.py', 'bench_head.py', 'bench_norm.py', 'graph_breaks.py'):
        monkeypatch.setattr(sys, 'argv', [script, '--help'])
        with pytest.raises(SystemExit):
            runpy.run_path(str(BENCH / script), run_name='__main__')
        out = capsys.readouterr().out
        assert '(default: ' in out and '\n    python benchmarks/' in out, script  # usage lines kept as written
        if script.startswith('bench_train'):
            assert '(default: tresnet_l)' in out and '(default: 448)' in out and '(default: 56)' in out
        if script == 'graph_breaks.py':
            assert '--iters' not in out and '--profile' not in out  # it times and profiles nothing


def test_an_unknown_mode_stops_the_benchmark_before_any_timing(capsys, monkeypatch):
    import runpy
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, 'argv', ['bench_train.py', *TINY, '--modes', 'published,fast+bogus'])
    with pytest.raises(SystemExit, match="unknown switch 'bogus'"):
        runpy.run_path(str(BENCH / 'bench_train.py'), run_name='__main__')
    assert 'images/s' not in capsys.readouterr().out


def test_gpu_all_runs_only_scripts_and_modes_that_exist():
    """benchmarks/gpu_all.sh (the GPU measurements, a dry run with SMOKE=1) is bash that parses, and every script
    and --modes list it runs is one the benchmarks still have (the script itself needs a GPU to be worth running)."""
    sys.path.insert(0, str(BENCH))
    from common import parse_mode
    script = BENCH / 'gpu_all.sh'
    assert subprocess.run(['bash', '-n', str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    commands = re.findall(r'^\s*(?:limit=\$\w+\s+)?(?:run|fallback|python)\s+(\S+\.py)\b(.*)$', text,
                          flags=re.MULTILINE)
    assert len(commands) >= 10 and 'bench_jpeg_train.py' in dict(commands), commands
    for name, rest in commands:
        assert (BENCH / name).is_file(), name
        for modes in re.findall(r'--modes\s+(\S+)', rest.replace('$mode', re.search(r'mode=(\S+)', text).group(1))):
            for mode in modes.split(','):
                parse_mode(mode)  # SystemExit for a mode the benchmarks no longer know


def test_jpeg_benchmark_maps_modes_to_train_flags_and_jpeg_folder_links_copies(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import json

    from bench_jpeg_train import train_flags
    from jpeg_coco import write

    from src_files.data.coco import coco_split
    assert train_flags('fast') == []
    assert train_flags('fast+lowmem+regional+cudagraphs') == ['--lowmem', '--compile', '--compile-scope', 'regional',
                                                             '--compile-mode', 'reduce-overhead']
    assert train_flags('fast+compile') == ['--compile', '--compile-scope', 'full', '--compile-mode', 'default']
    for mode in ('published', 'fast+mmtune'):
        with pytest.raises(SystemExit):
            train_flags(mode)
    root = write(str(tmp_path / 'coco'), 7, 3, 40, 30, distinct=4, processes=2)
    files = sorted((tmp_path / 'coco').glob('*2014/*.jpg'))
    assert len(files) == 10 and len({f.stat().st_ino for f in files}) == 4  # 4 drawn, 6 hard links to them
    train = coco_split(root, 'train')
    assert len(train) == 7 and train[6][0].size == (40, 30)
    annotations = json.loads((tmp_path / 'coco' / 'annotations' / 'instances_val2014.json').read_text())
    assert len(annotations['images']) == 3 and len(annotations['categories']) == 80


def test_data_benchmark_times_each_stage_and_the_loader(tmp_path, monkeypatch, capsys):
    code, out, _ = run_script('bench_data.py', ['--sizes', '32', '--images', '3', '--loader-workers', '0',
                                                '--batch-size', '2', '--batches', '1', '--data', tmp_path / 'jpegs'],
                              monkeypatch, capsys)
    assert code == 0
    row = re.search(r'^\| 32 \|(.*)\|$', out, re.M).group(1).split('|')
    assert len(row) == 9 and all(float(cell) > 0 for cell in row)
    assert re.search(r'loader, size 32, --workers 0, batch 2, float32: \d+ images/s \(0\.0 MiB', out)
    assert re.search(r'loader, size 32, --workers 0, batch 2, uint8: \d+ images/s', out)
