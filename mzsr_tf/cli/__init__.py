"""The command-line layer: every command's flags, their translation into library calls, and exit codes.

One module per command (``mzsr_tf.cli.main``, ``.pretrain``, ...: its parser, its checks before TensorFlow is
imported, and its work), the conventions they all follow in ``mzsr_tf.cli.conventions`` (exit codes, one-line
errors, logging, signals) and the flags several share in ``mzsr_tf.cli.flags``.

``COMMANDS`` is the one list of commands: the installed ``mzsr`` command (``mzsr <command> ...``, see
``mzsr_tf/cli/__main__.py``) and the tests take their commands from it.  Each script in ``scripts/`` is one
line, ``sys.exit(cli.<command>_script(argv))``, the same function ``mzsr <command>`` calls.

Importing this package imports no TensorFlow: the flags are parsed (and their errors reported) first.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Callable, Dict, Optional, Sequence

from mzsr_tf.cli import (blind_benchmark, calibrate_edge_kernel, convert_checkpoint, estimate_kernel, evaluate,
                         generate_tfrecord, learning_curve, main, make_demo, make_testsets, pretrain)
from mzsr_tf.cli.blind_benchmark import blind_benchmark_parser, blind_benchmark_script
from mzsr_tf.cli.calibrate_edge_kernel import calibrate_edge_kernel_parser, calibrate_edge_kernel_script
from mzsr_tf.cli.conventions import (EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, REPO_ROOT, ExitOnSignal, OutputError,
                                     exit_code_of, output_errors, prepare_environment, prog_name, run_command,
                                     split_names, write_reason)
from mzsr_tf.cli.convert_checkpoint import convert_checkpoint_parser, convert_checkpoint_script
from mzsr_tf.cli.estimate_kernel import estimate_kernel_parser, estimate_kernel_script
from mzsr_tf.cli.evaluate import evaluate_parser, evaluate_script
from mzsr_tf.cli.flags import (ESTIMATOR_CHOICES, ESTIMATOR_DEFAULT, MODEL_CHOICES, estimator_from_flags,
                               run_config_from_flags, tile_policy_from_flags)
from mzsr_tf.cli.generate_tfrecord import generate_tfrecord_parser, generate_tfrecord_script
from mzsr_tf.cli.learning_curve import learning_curve_parser, learning_curve_script
from mzsr_tf.cli.main import adaptation_config_from_flags, main_parser, main_script
from mzsr_tf.cli.make_demo import make_demo_parser, make_demo_script
from mzsr_tf.cli.make_testsets import make_testsets_parser, make_testsets_script
from mzsr_tf.cli.pretrain import pretrain_from_flags, pretrain_parser, pretrain_script

__all__ = [  # the registry, every command's parser and entry point, and what tests and scripts use of the layer
    "COMMANDS", "COMMANDS_BY_NAME", "Command", "mzsr", "mzsr_parser", "main_parser", "main_script",
    "pretrain_parser", "pretrain_script", "generate_tfrecord_parser", "generate_tfrecord_script",
    "make_testsets_parser", "make_testsets_script", "evaluate_parser", "evaluate_script", "estimate_kernel_parser",
    "estimate_kernel_script", "blind_benchmark_parser", "blind_benchmark_script", "calibrate_edge_kernel_parser",
    "calibrate_edge_kernel_script", "convert_checkpoint_parser", "convert_checkpoint_script",
    "learning_curve_parser", "learning_curve_script", "make_demo_parser", "make_demo_script", "EXIT_BAD_INPUT",
    "EXIT_FAILURE", "EXIT_OK", "REPO_ROOT", "ExitOnSignal", "OutputError", "exit_code_of", "output_errors",
    "prepare_environment", "run_command", "split_names", "write_reason", "ESTIMATOR_CHOICES", "ESTIMATOR_DEFAULT",
    "MODEL_CHOICES", "estimator_from_flags", "run_config_from_flags", "tile_policy_from_flags",
    "adaptation_config_from_flags", "pretrain_from_flags",
]


@dataclasses.dataclass(frozen=True)
class Command:
    """A command: ``mzsr <name>``, ``scripts/<name>.py``; ``parser()`` makes its parser, ``script(argv)`` runs it
    and returns the exit code."""
    name: str
    parser: Callable[[], argparse.ArgumentParser]
    script: Callable[[Optional[Sequence[str]]], int]

    @property
    def summary(self) -> str:
        """One line: the parser factory's docstring after its ``scripts/<name>.py``: prefix."""
        first = (self.parser.__doc__ or "").strip().splitlines()[0]
        return first.split(": ", 1)[-1].replace("``", "")


COMMANDS = tuple(Command(module.__name__.rsplit(".", 1)[-1], parser, script) for module, parser, script in (
    (main, main_parser, main_script),
    (pretrain, pretrain_parser, pretrain_script),
    (generate_tfrecord, generate_tfrecord_parser, generate_tfrecord_script),
    (make_testsets, make_testsets_parser, make_testsets_script),
    (evaluate, evaluate_parser, evaluate_script),
    (estimate_kernel, estimate_kernel_parser, estimate_kernel_script),
    (blind_benchmark, blind_benchmark_parser, blind_benchmark_script),
    (calibrate_edge_kernel, calibrate_edge_kernel_parser, calibrate_edge_kernel_script),
    (convert_checkpoint, convert_checkpoint_parser, convert_checkpoint_script),
    (learning_curve, learning_curve_parser, learning_curve_script),
    (make_demo, make_demo_parser, make_demo_script),
))
"""Every command, in the order ``mzsr --help`` lists them; the name is its module's (and its script's)."""
COMMANDS_BY_NAME: Dict[str, Command] = {command.name: command for command in COMMANDS}


def mzsr_parser() -> argparse.ArgumentParser:
    """``mzsr``: the commands of ``COMMANDS`` as subcommands."""
    width = max(len(command.name) for command in COMMANDS)
    parser = argparse.ArgumentParser(
        prog="mzsr", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="MZSR (Meta-Transfer Learning for Zero-Shot Super-Resolution) in TensorFlow 2. Each command "
                    "is also a script: mzsr NAME ... is python scripts/NAME.py ...",
        epilog="commands:\n" + "\n".join(f"  {command.name:<{width}}  {command.summary}" for command in COMMANDS)
               + "\n\nexample:\n  mzsr main --savepath results/demo   (the demo)\n  mzsr main --help\n"
               "exit codes: those of the command (0 success, 2 bad input, 1 anything else)")
    parser.add_argument("command", choices=[command.name for command in COMMANDS], metavar="COMMAND",
                        help="one of the commands below; mzsr COMMAND --help gives its flags")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's flags")
    return parser


def mzsr(argv: Optional[Sequence[str]] = None) -> int:
    """The ``mzsr`` command: ``mzsr <command> [flags]`` runs that command (its parser named ``mzsr <command>``)."""
    args = mzsr_parser().parse_args(sys.argv[1:] if argv is None else argv)
    with prog_name(f"mzsr {args.command}"):
        return COMMANDS_BY_NAME[args.command].script(args.arguments)
