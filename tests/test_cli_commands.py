"""The one registry of commands (``mzsr_tf.cli.COMMANDS``): the ``mzsr`` command, the scripts and the installed
entry point all come from it."""
import os
import pathlib
import subprocess
import sys

import pytest

from mzsr_tf import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _mzsr(*args):
    """``python -m mzsr_tf.cli ARGS`` (what the installed ``mzsr`` runs)."""
    return subprocess.run([sys.executable, "-m", "mzsr_tf.cli", *args], capture_output=True, text=True,
                          cwd=str(REPO), timeout=120)


def test_mzsr_help_lists_every_command():
    done = _mzsr("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mzsr ")
    listed = done.stdout.split("\ncommands:\n", 1)[1]
    for command in cli.COMMANDS:
        assert f"\n  {command.name} " in "\n" + listed, command.name


def test_mzsr_main_help_is_the_main_parser_under_its_command_name():
    done = _mzsr("main", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mzsr main ")
    assert "--inputpath" in done.stdout and "--train" in done.stdout and "exit codes" in done.stdout


def test_mzsr_refuses_an_unknown_command_and_a_bad_flag_of_a_command():
    unknown = _mzsr("train")
    assert unknown.returncode == 2 and "invalid choice: 'train'" in unknown.stderr
    bad = _mzsr("main", "--num", "0")
    assert bad.returncode == 2
    assert bad.stderr.startswith("usage: mzsr main ") and "--num must be a positive integer, got 0" in bad.stderr


def test_every_script_is_a_registry_command_and_calls_its_entry_point():
    scripts = sorted(path.stem for path in (REPO / "scripts").glob("*.py"))
    assert scripts == sorted(cli.COMMANDS_BY_NAME)
    for command in cli.COMMANDS:
        text = (REPO / "scripts" / f"{command.name}.py").read_text()
        assert f"return cli.{command.script.__name__}(argv)" in text, command.name
        assert getattr(cli, command.script.__name__) is command.script
        assert command.parser().prog == f"scripts/{command.name}.py"


def test_the_installed_entry_point_is_the_registry_dispatcher():
    tomllib = pytest.importorskip("tomllib")
    with open(REPO / "pyproject.toml", "rb") as file:
        scripts = tomllib.load(file)["project"]["scripts"]
    assert scripts == {"mzsr": "mzsr_tf.cli:mzsr"}


def test_the_registry_imports_no_tensorflow():
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom mzsr_tf import cli\n"
                           "print(len(cli.COMMANDS), 'tensorflow' in sys.modules)"],
                          capture_output=True, text=True, cwd=str(REPO), timeout=120,
                          env=dict(os.environ))
    assert done.stdout == f"{len(cli.COMMANDS)} False\n", done.stderr
