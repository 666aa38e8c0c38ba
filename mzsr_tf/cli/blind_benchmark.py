"""``scripts/blind_benchmark.py`` (``mzsr blind_benchmark``): MZSR on random-kernel test sets under four kernel assumptions."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Dict, Optional, Sequence

from mzsr_tf.cli.conventions import (EXIT_OK, REPO_ROOT, OutputError, _add_gpu, _add_verbose, _parser, _run_script,
                                     log, run_command, split_names)
from mzsr_tf.config import ConfigError, preset_for_model, read_json_object


def blind_benchmark_parser() -> argparse.ArgumentParser:
    """``scripts/blind_benchmark.py``: MZSR on random-kernel test sets under four kernel assumptions."""
    parser = _parser("scripts/blind_benchmark.py",
        description="The blind benchmark: MZSR (--model 0) on the rk test sets (one random kernel per image, "
                    "make_testsets.py --kernels rk) given the true kernels, the estimated ones (made by "
                    "scripts/estimate_kernel.py into ESTIMATED/<set>/), no kernel (the bicubic fallback) and a "
                    "fixed g^d_2.0. Writes OUT/blind.json, OUT/blind.md and OUT/kernel_errors.png.",
        epilog="example:\n  python scripts/blind_benchmark.py --testsets dataset/testsets/benchmark --sets BSD100 "
               "Set14 --estimated edges=results/rk_edges kernelgan=results/rk_kernelgan --out results/blind\n"
               "exit codes: 0 success, 2 bad input (the message names the file or set), 1 anything else")
    _add_gpu(parser)
    parser.add_argument("--testsets", required=True, help="test-set folder holding Input/rk/<set>/")
    parser.add_argument("--sets", nargs="+", required=True, help="set names, e.g. BSD100 Set14")
    parser.add_argument("--estimated", nargs="+", required=True,
                        help="NAME=ROOT entries: ROOT/<set>/<image>.mat estimates + estimation.json of estimator NAME")
    parser.add_argument("--checkpoint", default=None, help="weights (default: --model 0's checkpoint)")
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 10], help="MZSR step counts")
    parser.add_argument("--reuse", default=None, metavar="BLIND_JSON",
                        help="an earlier run's blind.json: its evaluations of the same checkpoint, steps and sets, "
                             "made with the default son grid (and for an estimator, of the same estimates) are "
                             "reused (e.g. to add an estimator without running the other rows again)")
    parser.add_argument("--out", default="results/blind", help="output folder")
    return _add_verbose(parser)


def blind_benchmark_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/blind_benchmark.py``; the command line is recorded in the results."""
    def check(args) -> Optional[str]:
        args.command = "python scripts/blind_benchmark.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        return None
    return _run_script(blind_benchmark_parser(), blind_benchmark_from_flags, argv, check)


def _named_paths(entries: Sequence[str]) -> Dict[str, str]:
    """``NAME=PATH`` flag values as a dict; an entry without ``=`` is a ``ConfigError``."""
    named = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--estimated {entry}: expected NAME=ROOT, e.g. edges=results/rk_edges")
        if name in named:
            raise ConfigError(f"--estimated {entry}: the name {name} is given twice (also {name}={named[name]}); "
                              "each estimator's rows need a name of their own")
        named[name] = path
    return named


def blind_benchmark_from_flags(args) -> int:
    def benchmark(args) -> int:
        from mzsr_tf.atomic import check_output_folder, write_errors_as
        from mzsr_tf.blind import blind_benchmark, markdown_table, write_blind_results
        from mzsr_tf.checkpoints import checkpoint_for_preset
        from mzsr_tf.evaluate import check_steps
        steps = check_steps(args.steps)
        estimated = _named_paths(args.estimated)
        check_output_folder(args.out, "--out")
        checkpoint = checkpoint_for_preset(args.checkpoint, preset_for_model(0), REPO_ROOT)
        previous = read_json_object(args.reuse, "--reuse") if args.reuse else None
        results = blind_benchmark(args.testsets, split_names(args.sets), checkpoint, estimated, steps,
                                  log=log.info, previous=previous)
        with write_errors_as(OutputError):
            write_blind_results(results, args.out, command=args.command)
        log.info("%s", markdown_table(results))
        return EXIT_OK
    return run_command(benchmark, args)
