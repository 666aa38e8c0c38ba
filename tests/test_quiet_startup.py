"""The scripts' stderr holds their own messages only (TensorFlow's C++ start-up lines are silenced unless
--verbose), and every flag of every script has help."""
import argparse
import os
import subprocess
import sys

import pytest

from mzsr_tf import cli

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name, *args, env=None):
    environment = dict(os.environ)
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    environment.update(env or {})
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", name), *args], capture_output=True,
                          text=True, env=environment, cwd=REPO_ROOT, timeout=600)


@pytest.mark.slow
def test_the_demo_run_prints_nothing_on_stderr(tmp_path):
    done = _script("main.py", "--savepath", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "[*] Average PSNR ** Initial: 30.9081, Final : 34.6073" in done.stdout  # the same numbers as ever


def test_errors_are_the_only_stderr_line(tmp_path):
    done = _script("main.py", "--inputpath", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def test_verbose_shows_tensorflow_start_up(tmp_path):
    """The silencing is what removes the lines: with --verbose TensorFlow's own start-up lines appear."""
    done = _script("convert_checkpoint.py", str(tmp_path / "missing"), "--weights", str(tmp_path / "w"),
                   "--verbose")
    assert done.returncode == 2
    assert done.stderr.count("\n") > 1 and done.stderr.rstrip().splitlines()[-1].startswith("error: ")
    quiet = _script("convert_checkpoint.py", str(tmp_path / "missing"), "--weights", str(tmp_path / "w"))
    assert quiet.returncode == 2 and quiet.stderr.count("\n") == 1, quiet.stderr


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda command: command.name)
def test_every_flag_has_help(command):
    """Every command of the registry (the one list ``mzsr`` and the scripts use), so none can be missed."""
    parser = command.parser()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help.strip(), f"{parser.prog}: {action.option_strings or action.dest} has no help"
    assert "exit codes" in parser.epilog and "example" in parser.epilog
