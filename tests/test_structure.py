"""The shape of the code a reader relies on: settings resolved once into frozen objects, no flags below the
scripts, imports at the top of each module, and --help that starts with the flags users set most."""
import ast
import dataclasses
import pathlib

import pytest

import train
import train_zsl_nus
from src_files import settings
from src_files.cli import flags, resolve
from src_files.models.config import ModelConfig

SRC = pathlib.Path(__file__).resolve().parent.parent / 'src_files'


def _modules():
    return sorted(SRC.rglob('*.py'))


def test_settings_are_frozen_dataclasses():
    kinds = [ModelConfig] + [obj for obj in vars(settings).values()
                             if isinstance(obj, type) and dataclasses.is_dataclass(obj)]
    assert len(kinds) >= 7
    for kind in kinds:
        assert kind.__dataclass_params__.frozen, kind.__name__
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.OptimSettings().lr = 1.0


def test_no_function_below_the_scripts_takes_the_parsed_flags():
    """Only src_files/cli sees the parsed flags (as a dict); every other function takes settings objects, and
    only cli/ (and safe_load.py, which reads checkpoints pickling a Namespace) knows argparse."""
    offenders = []
    for path in _modules():
        text = path.read_text()
        tree = ast.parse(text, str(path))
        in_cli = path.parent.name == 'cli'
        if not in_cli and path.name != 'safe_load.py' and 'argparse' in text:
            offenders.append(f"{path.relative_to(SRC)} uses argparse")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs]
                if not in_cli and ({'args', 'namespace', 'explicit'} & set(names)):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}({', '.join(names)})")
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'getattr' and node.args and \
                    getattr(node.args[0], 'id', None) == 'args':
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} getattr(args, ...)")
    assert not offenders, offenders


def test_project_imports_are_at_the_top_of_each_module():
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    module = getattr(inner, 'module', None) or ''
                    project = isinstance(inner, ast.ImportFrom) and (inner.level > 0 or module.startswith('src_files'))
                    project |= isinstance(inner, ast.Import) and any(a.name.startswith('src_files')
                                                                     for a in inner.names)
                    if project:
                        offenders.append(f"{path.relative_to(SRC)}:{inner.lineno}")
    assert not offenders, offenders


@pytest.mark.parametrize('module', [train, train_zsl_nus])
def test_help_lists_data_and_model_flags_before_the_speed_flags(module):
    text = module.build_parser().format_help().split('options:', 1)[1]  # (after the usage line)
    assert text.index('--data ') < text.index('--model-name') < text.index('--epochs') < text.index('--compile')
    assert text.index('--model-path') < text.index('--channels-last')
    assert text.index('--batch-size') < text.index('speed and memory')  # the speed group comes last


def test_train_settings_are_resolved_from_the_flags_once(tmp_path):
    """--demo fills what the user did not give; flags given win; the result is one frozen object."""
    values, explicit = flags.parse(train.build_parser(), ['--demo', '--epochs', '2', '--data', str(tmp_path),
                                                          '--data-format', 'coco', '--output-dir',
                                                          str(tmp_path / 'out')])
    resolved, state, finished = resolve.train_settings(values, explicit, 'train.py')
    assert state is None and finished is None
    assert resolved.optim.epochs == 2 and resolved.model.model_name == 'tresnet_m' and not resolved.optim.augment
    assert resolved.data.root == str(tmp_path) and resolved.run.output_dir == str(tmp_path / 'out')
    assert resolved.record_dict()['epochs'] == 2
