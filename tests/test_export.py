"""export.py and src_files/export: ONNX and .pt2 files of randomly initialised tresnet_m heads at 64 px (a plain
head, a group-decoding head, a zero-shot head with baked-in word vectors), their parity with PyTorch at batch 1
and 2 from one file, metadata, one-line errors, and the tolerance guard. The exports run in this process; all but
the plain head's ONNX export and the tolerance guard are marked slow, as is the reference-logits check at 224 px.
The random tresnet_m checkpoints have fewer blocks (every kind of TResNet-M's blocks, fewer copies: the `shallow`
fixture), which halves the time to trace, write and load each file; the reference-logits check exports the whole
TResNet-M of the reference layouts."""
import json
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import export
from src_files.data.demo import CLASS_NAMES, demo_coco_root
from src_files.cli import flags
from tests import script_calls
from tests.script_calls import assert_user_error
from src_files.training.checkpoint import save_best
from src_files.errors import UserError
from src_files.export import OnnxModel, checked, compare, load_onnx, load_pt2
from src_files.models import create_model
from src_files.models.config import ModelConfig
from small_models import shallow_tresnet_m

SIZE = 64
TOL = 1e-4
slow = pytest.mark.slow  # (each runs whole exports and their parity checks)


def call_main(args, capfd):
    """export.py's main() in this process -> (exit code, stdout, stderr)."""
    return script_calls.call_main(export, args, capfd)


def script_output(module, args, capfd):
    code, out, err = script_calls.call_main(module, args, capfd)
    assert code == 0, err
    return out




@pytest.fixture
def shallow(monkeypatch):
    """tresnet_m with fewer blocks (small_models.EVERY_KIND), as in the checkpoints of `work`."""
    shallow_tresnet_m(monkeypatch)


def make_checkpoint(path, class_names, seed=0, **cfg):
    cfg = ModelConfig(model_name='tresnet_m', decoder_embedding=64, image_size=SIZE, **cfg)
    torch.manual_seed(seed)
    model = create_model(model_name='tresnet_m', **{k: v for k, v in cfg.to_dict().items() if k != 'model_name'})
    save_best(str(path), model.state_dict(), class_names, cfg.to_dict())
    return path


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp('export')
    with pytest.MonkeyPatch.context() as patch:  # (the tests that read them take the `shallow` fixture)
        shallow_tresnet_m(patch)
        make_checkpoint(root / 'plain.pth', CLASS_NAMES, num_classes=16)  # the demo's classes: validate.py scores it
        make_checkpoint(root / 'groups.pth', [f'g{i}' for i in range(40)], seed=1, num_classes=40, num_of_groups=4)
        make_checkpoint(root / 'zsl.pth', [f'seen {i}' for i in range(16)], seed=2, num_classes=16, zsl=1)
    torch.save(torch.randn(300, 5, generator=torch.Generator().manual_seed(3)), root / 'wordvecs.pth')
    (root / 'unseen.txt').write_text('\n'.join(f'unseen {i}' for i in range(5)))
    (root / 'pics').mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(root / 'pics' / f'{i}.jpg')
    return root


def pytorch_model(checkpoint, wordvecs=None):
    """The checkpoint's model as export.py loads it (eval, fp32, CPU, folded), with word vectors if given."""
    values, explicit = flags.parse(export.build_parser(), ['--model-path', str(checkpoint)] +
                                   (['--wordvecs', str(wordvecs)] if wordvecs else []))
    return export.load_for_export(export.export_settings(values, explicit), values['wordvecs'])[0]


def assert_parity(model, runner, num_classes):
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    for batch in (x[:1], x):  # both batch sizes from the one file
        with torch.no_grad():
            reference = model(batch).numpy()
        out = runner(batch)
        assert out.shape == (len(batch), num_classes)
        assert compare(reference, out)[1] < TOL


@pytest.mark.parametrize('fmt', ['onnx', pytest.param('pt2', marks=slow)])
def test_export_plain_head_parity_and_metadata(work, shallow, tmp_path, capfd, fmt):
    out = tmp_path / f'plain.{fmt}'
    images = ['--check-images', work / 'pics'] if fmt == 'pt2' else []
    code, stdout, err = call_main(['--model-path', work / 'plain.pth', '--format', fmt, '--output', out] + images,
                                  capfd)
    assert code == 0, err
    assert 'parity random batch 1' in stdout and 'parity random batch 2' in stdout and f'wrote {out}' in stdout
    assert ('parity images 1-3 of' in stdout) == (fmt == 'pt2')
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left (checked first)
    runner, meta = (load_onnx if fmt == 'onnx' else load_pt2)(str(out))
    assert meta['class_names'] == CLASS_NAMES
    assert (meta['image_size'], meta['model_name'], meta['num_classes'], meta['zsl']) == (SIZE, 'tresnet_m', 16, False)
    assert meta['input']['range'] == [0.0, 1.0] and meta['input']['mean'] == [0.0] * 3 and meta['source'] == 'plain.pth'
    assert meta['task'] == 'multi-label' and 'sigmoid' in meta['output']
    assert_parity(pytorch_model(work / 'plain.pth'), runner, 16)
    if fmt == 'onnx':
        import onnx
        proto = onnx.load(str(out), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        assert json.loads(props['class_names']) == meta['class_names'] and props['image_size'] == str(SIZE)
        assert proto.opset_import[0].version == 18 and [i.name for i in proto.graph.input] == ['images']
        assert (meta['opset'], meta['exporter'], meta['format']) == ('18', 'dynamo', 'onnx')
        model = OnnxModel(out)  # the drop-in for `model(images)` code
        assert model.eval() is model and not model.training and model.class_names == meta['class_names']
        logits = model(torch.rand(3, 3, SIZE, SIZE))
        assert isinstance(logits, torch.Tensor) and logits.shape == (3, 16) and logits.dtype == torch.float32
        assert_scripts_run_the_file(work / 'plain.pth', out, tmp_path, capfd)




def assert_scripts_run_the_file(checkpoint, exported, tmp_path, capfd):
    """validate.py prints the same mAP for the .onnx file as for its .pth; infer.py labels images with it."""
    import infer
    import validate
    data = demo_coco_root(cache_dir=str(tmp_path / 'demo'), num_train=4, num_val=12)
    maps = []
    for model_path in (checkpoint, exported):
        out = script_output(validate, ['--model-path', model_path, '--data', data, '--workers', 0], capfd)
        maps.append(float(re.search(r'^mAP ([\d.]+)', out, re.M).group(1)))
    assert maps[0] == pytest.approx(maps[1], abs=0.01)
    script_output(infer, ['--model-path', exported, '--pic-path', f'{data}/val2014', '--output', tmp_path / 'p.csv',
                          '--workers', 0], capfd)
    assert len((tmp_path / 'p.csv').read_text().splitlines()) == 1 + 12


@slow
def test_export_group_decoding_head(work, shallow, tmp_path, capfd):
    out = tmp_path / 'groups.onnx'
    code, _, err = call_main(['--model-path', work / 'groups.pth', '--output', out], capfd)
    assert code == 0, err
    runner, meta = load_onnx(str(out))
    assert meta['num_classes'] == 40 and meta['class_names'][-1] == 'g39'
    assert_parity(pytorch_model(work / 'groups.pth'), runner, 40)


@slow
def test_export_zero_shot_head_bakes_in_the_word_vectors(work, shallow, tmp_path, capfd):
    out = tmp_path / 'zsl.onnx'
    code, _, err = call_main(['--model-path', work / 'zsl.pth', '--wordvecs', work / 'wordvecs.pth',
                              '--class-names', work / 'unseen.txt', '--output', out], capfd)
    assert code == 0, err
    runner, meta = load_onnx(str(out))
    assert runner.session.get_inputs()[0].name == 'images' and len(runner.session.get_inputs()) == 1
    assert meta['zsl'] and meta['class_names'] == [f'unseen {i}' for i in range(5)]
    assert_parity(pytorch_model(work / 'zsl.pth', work / 'wordvecs.pth'), runner, 5)


def test_tolerance_guard_removes_the_file(work, shallow, tmp_path, capfd, monkeypatch):
    """A runner whose logits are off by 1e-3 of the largest: the check fails, no file is left, one line."""
    def perturbed(path, threads=None):
        runner, meta = load_onnx(path, threads)
        return (lambda images: runner(images) * (1 + 1e-3)), meta
    monkeypatch.setattr(checked, 'load_onnx', perturbed)
    out = tmp_path / 'bad.onnx'
    out.write_bytes(b'an older export')  # kept: a failed export leaves what was there (it never replaced it)
    code, stdout, err = call_main(['--model-path', work / 'plain.pth', '--output', out, '--exporter',
                                   'torchscript', '--opset', 17], capfd)
    assert_user_error(code, err, 'parity check failed', 'tolerance 0.0001', f'{out} was not written')
    assert 'parity random batch 1: max |diff|' in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bad.onnx'] and out.read_bytes() == b'an older export'


def test_unreadable_and_foreign_onnx_files_are_one_line(tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'\x08\x07garbage' * 10)
    foreign = tmp_path / 'foreign.onnx'
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g',
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)]), str(foreign))
    for path, fragment in ((corrupt, 'is not a readable ONNX model'), (foreign, 'not written by'),
                           (tmp_path / 'missing.onnx', 'not found')):
        with pytest.raises(UserError) as error:
            load_onnx(str(path))
        assert fragment in str(error.value) and '\n' not in str(error.value)
    with pytest.raises(UserError, match='is not a readable torch.export program'):
        load_pt2(str(corrupt.rename(tmp_path / 'corrupt.pt2')))
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # not installed
    with pytest.raises(UserError, match='pip install onnxruntime'):
        load_onnx(str(foreign))


def test_bad_flags_are_one_line(work, shallow, tmp_path, capfd):
    cases = [(['--model-path', work / 'zsl.pth'], ('zero-shot model', '--wordvecs')),
             (['--model-path', work / 'plain.pth', '--wordvecs', work / 'wordvecs.pth'], ('zero-shot checkpoints',)),
             (['--model-path', work / 'plain.pth', '--opset', 12], ('--opset 12', '18-23')),
             (['--model-path', work / 'plain.pth', '--output', work / 'plain.pth'], ('the checkpoint itself',)),
             (['--model-path', work / 'zsl.pth', '--wordvecs', work / 'unseen.txt'], ('cannot read word vectors',)),
             (['--model-path', tmp_path / 'none.pth'], ('checkpoint not found',)),
             ([], ('--model-path',))]
    for args, fragments in cases:
        assert_user_error(*call_main(args, capfd)[::2], *fragments)
    assert not list(work.glob('*.onnx'))


def test_help_documents_every_flag(capfd):
    with pytest.raises(SystemExit):
        export.build_parser().parse_args(['--help'])
    text = ' '.join(capfd.readouterr().out.split())
    for flag in ('--model-path', '--format', '--output', '--opset', '--exporter', '--wordvecs', '--class-names',
                 '--check-images', '--tolerance', '--model-name', '--image-size', '--zsl', '--unsafe-load'):
        assert flag in text
    assert 'opset 18 writes' in text and '1e-4 for fp32' in text


@slow
@pytest.mark.parametrize('case', ['tresnet_m_224_coco80', 'tresnet_m_224_zsl925_eval81'])
def test_exported_onnx_gives_the_reference_logits(case, tmp_path, capfd):
    """The published implementation's logits (tests/reference) from the exported ONNX file, to 1e-4 of the
    largest logit; the zero-shot case with its 81 word vectors baked in."""
    from pathlib import Path
    from reference_rule import reference_input, reference_state_dict, reference_wordvecs
    ref = json.loads((Path(__file__).parent / 'reference' / f'{case}.json').read_text())
    cfg = {k: v for k, v in ref['config'].items() if k in ModelConfig.field_names()}
    state_dict = {k: v.float() if v.is_floating_point() else v
                  for k, v in reference_state_dict(ref['state_dict_layout']).items()}
    save_best(str(tmp_path / 'ref.pth'), state_dict, [str(i) for i in range(cfg['num_classes'])], cfg)
    argv = ['--model-path', tmp_path / 'ref.pth', '--output', tmp_path / 'ref.onnx']
    if cfg['zsl']:
        torch.save(reference_wordvecs(ref['config']['n_wordvecs']).float(), tmp_path / 'wordvecs.pth')
        argv += ['--wordvecs', tmp_path / 'wordvecs.pth']
    code, _, err = call_main(argv, capfd)
    assert code == 0, err
    runner, _ = load_onnx(str(tmp_path / 'ref.onnx'))
    logits = runner(reference_input(ref['config']['batch'], cfg['image_size']).float())
    assert compare(np.array(ref['logits']), logits)[1] < TOL
