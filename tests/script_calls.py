"""Calling a script's main() in the test process as its command line would (through run.run_main), and checking
that a bad input ends in one error line."""
import pytest

from src_files.cli import run


def call_main(module, args, capfd):
    """main() of a script through run_main, in this process; returns (exit code, stdout, stderr)."""
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run.run_main(module.main, [str(a) for a in args])
    out, err = capfd.readouterr()
    return exit_info.value.code, out, err


def assert_user_error(code, err, *fragments):
    """A non-zero exit with exactly one 'error: ' line holding every fragment, and no traceback; -> that line."""
    errors = [line for line in err.splitlines() if line.startswith('error: ')]
    assert code != 0
    assert 'Traceback' not in err, err
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
