"""The scripts' command lines: underscore spellings, one-line errors for unknown flags, --thr/--th, --workers,
--unsafe-load, and no --model-path default that names a file outside the repository."""
import os
import subprocess
import sys

import pytest

import infer
import train
import train_zsl_nus
import validate
from src_files.cli import flags

SCRIPTS = [train, train_zsl_nus, validate, infer]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _long_flags(parser):
    return [option for action in parser._actions for option in action.option_strings if option.startswith('--')]


@pytest.mark.parametrize('module', SCRIPTS)
def test_every_flag_takes_its_underscore_spelling(module):
    parser = module.build_parser()
    for flag in _long_flags(parser):
        underscored = flag.replace('-', '_').replace('__', '--', 1)
        assert parser._dashed([underscored, f'{underscored}=1']) == [flag, f'{flag}=1']
    values, explicit = flags.parse(parser, ['--model_path=x.pth', '--image_size', '448', '--num_classes', '5'])
    assert (values['model_path'], values['image_size'], values['num_classes']) == ('x.pth', 448, 5)
    assert {'model_path', 'image_size', 'num_classes'} <= explicit


def test_the_published_readme_command_parses():
    values, explicit = flags.parse(train.build_parser(), ['--data=DIR', '--model_name=tresnet_l', '--image_size=448'])
    assert (values['data'], values['model_name'], values['image_size']) == ('DIR', 'tresnet_l', 448)
    assert explicit == {'data', 'model_name', 'image_size'}
    # after `--` nothing is a flag, so nothing is rewritten
    assert train.build_parser()._dashed(['--image_size', '4', '--', '--model_name']) == \
        ['--image-size', '4', '--', '--model_name']


def _parse_error(parser, argv, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2  # argparse's code for a bad command line
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize('module', SCRIPTS)
def test_an_unknown_flag_is_one_line_naming_the_closest_one(module, capsys):
    parser = module.build_parser()
    assert _parse_error(parser, ['--modle-name', 'tresnet_m'], capsys) == \
        'error: unrecognized argument --modle-name; did you mean --model-name?'
    assert _parse_error(parser, ['--image_sise=64'], capsys) == \
        'error: unrecognized argument --image_sise; did you mean --image-size?'
    assert _parse_error(parser, ['--zzzzzzzz'], capsys) == 'error: unrecognized argument --zzzzzzzz; see --help'
    line = _parse_error(parser, ['--modle-name', 'x', '--batch-sise', '4'], capsys)
    assert line == ('error: unrecognized arguments --modle-name (did you mean --model-name?), --batch-sise (did '
                    'you mean --batch-size?); see --help')
    assert _parse_error(parser, ['--image-size', 'big'], capsys) == \
        "error: argument --image-size: invalid int value: 'big'"


def test_misspelled_and_abbreviated_flags_get_the_flags_they_may_mean(capsys):
    """Edit distance finds a misspelling; an abbreviation is refused (a later flag could change what it means)
    and named in full."""
    assert _parse_error(validate.build_parser(), ['--treshold', '0.5'], capsys) == \
        'error: unrecognized argument --treshold; did you mean --threshold?'
    assert _parse_error(infer.build_parser(), ['--treshold', '0.5'], capsys) == \
        'error: unrecognized argument --treshold; did you mean --threshold?'
    assert _parse_error(train.build_parser(), ['--out', 'x'], capsys) == \
        'error: unrecognized argument --out; did you mean --output-dir or --opt?'
    assert _parse_error(train.build_parser(), ['--epoch', '3'], capsys) == \
        'error: unrecognized argument --epoch; did you mean --epochs?'
    assert _parse_error(infer.build_parser(), ['--pic', 'x.jpg'], capsys) == \
        'error: unrecognized argument --pic; did you mean --pic-path?'
    assert flags.parse(validate.build_parser(), ['--threshold', '0.3'])[0]['thr'] == 0.3  # (a third spelling)
    assert flags.edit_distance('kitten', 'sitting') == 3 and flags.edit_distance('', 'ab') == 2


@pytest.mark.slow
def test_an_unknown_flag_through_the_script(tmp_path):
    """As a user runs it: exit code 2 and one line on stderr, no usage text."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'validate.py'), '--modle-name', 'tresnet_m'],
                          cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr == 'error: unrecognized argument --modle-name; did you mean --model-name?\n'


@pytest.mark.parametrize('module', [validate, infer])
def test_thr_and_th_are_the_same_flag(module):
    for flag in ('--thr', '--th', '--th=', '--thr='):
        argv = [flag + '0.3'] if flag.endswith('=') else [flag, '0.3']
        values, explicit = flags.parse(module.build_parser(), argv)
        assert values['thr'] == 0.3 and 'thr' in explicit


@pytest.mark.parametrize('module', SCRIPTS)
def test_unsafe_load_is_off_unless_given(module):
    values, _ = flags.parse(module.build_parser(), [])
    assert values['unsafe_load'] is False
    values, explicit = flags.parse(module.build_parser(), ['--unsafe-load'])
    assert values['unsafe_load'] is True and 'unsafe_load' in explicit


def test_infer_workers_and_no_default_files():
    values, _ = flags.parse(infer.build_parser(), [])
    assert values['workers'] == flags.default_workers()
    assert flags.parse(infer.build_parser(), ['-j', '3'])[0]['workers'] == 3
    for module in (validate, infer):
        values, _ = flags.parse(module.build_parser(), [])
        assert values['model_path'] is None
    assert values['pic_path'] is None
