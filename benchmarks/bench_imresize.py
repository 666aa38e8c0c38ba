"""Speed of mzsr_tf.imresize against the reference's imresize, measured in the same run.

Three operations on a 512x512x3 float32 image (the reference reads images as float32):
  1. x2 cubic up-scaling,
  2. 1/2 cubic down-scaling with antialiasing,
  3. 1/2 'direct' down-scaling with a 21x21 numeric kernel.

For each: ms per call (best and median of the timed calls) of the numpy ``imresize`` and of
``tf_imresize`` inside a ``tf.function``, and the reference's, with the speed-up ratio of the best
times (the least disturbed by other processes on a shared machine).  The reference is imported at run time from a
checkout of github JWSoh/MZSR (``--reference``, default ../ref/MZSR or /work/ref/MZSR); without one
the baseline is skipped with a message.  Targets on a 2-core CPU: >= 5x on 1 and 3, >= 1x on 2.

    python benchmarks/bench_imresize.py [--repeats 20] [--reference PATH]
"""
import argparse
import importlib.util
import os
import pathlib
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mzsr_tf.imresize import imresize, tf_imresize  # noqa: E402
from mzsr_tf.kernels import anisotropic_gaussian  # noqa: E402

TARGETS = {"x2 cubic up": 5.0, "1/2 cubic antialiased down": 1.0, "1/2 direct, 21x21 kernel": 5.0}


def _default_reference():
    here = pathlib.Path(__file__).resolve().parents[1]
    for candidate in (here.parent / "ref" / "MZSR", pathlib.Path("/work/ref/MZSR")):
        if (candidate / "imresize.py").exists():
            return candidate
    return None


def load_reference_imresize(path):
    """The reference's imresize function from ``path/imresize.py``, or None (with the reason)."""
    if path is None or not (pathlib.Path(path) / "imresize.py").exists():
        return None, f"no reference imresize.py at {path}"
    spec = importlib.util.spec_from_file_location("reference_imresize", pathlib.Path(path) / "imresize.py")
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy.ndimage.filters etc. are deprecated namespaces
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # an incompatible scipy/numpy: report and skip the baseline
            return None, f"cannot import {path}/imresize.py: {error}"
    return module.imresize, None


def ms_per_call(function, repeats):
    """(best, median) milliseconds per call over ``repeats`` timed calls after two warm-up calls.

    The best time is the least disturbed by other processes on a shared machine; ratios use it.
    """
    function()  # warm-up (tracing, caches)
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.min(times)), 1000 * float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--reference", default=_default_reference(),
                        help="folder holding the reference's imresize.py (github JWSoh/MZSR)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    image = rng.random((512, 512, 3)).astype(np.float32)
    kernel = anisotropic_gaussian(21, 0.6, 4.0, 1.5)
    operations = {
        "x2 cubic up": dict(scale=2.0, kernel=None),
        "1/2 cubic antialiased down": dict(scale=0.5, kernel=None),
        "1/2 direct, 21x21 kernel": dict(scale=0.5, kernel=kernel),
    }
    reference, reason = load_reference_imresize(args.reference)
    if reference is None:
        print(f"[baseline skipped] {reason}")
    print(f"512x512x3 float32, {args.repeats} calls each, best (median) ms per call, {os.cpu_count()} CPUs")
    print(f"{'operation':28s} {'numpy imresize':>16s} {'tf.function':>16s} {'reference':>18s} {'speed-up':>8s}"
          f" {'target':>6s}")
    image_tensor = tf.constant(image)
    failures = 0
    for name, kwargs in operations.items():
        tf_kernel = "cubic" if kwargs["kernel"] is None else tf.constant(kwargs["kernel"], tf.float32)
        in_graph = tf.function(lambda x, k=tf_kernel, s=kwargs["scale"]: tf_imresize(x, s, kernel=k))
        ours, ours_median = ms_per_call(lambda: imresize(image, **kwargs), args.repeats)
        graph, graph_median = ms_per_call(lambda: in_graph(image_tensor).numpy(), args.repeats)
        line = f"{name:28s} {ours:6.1f} ({ours_median:5.1f}) {graph:6.1f} ({graph_median:5.1f})"
        if reference is not None:
            baseline, baseline_median = ms_per_call(lambda: reference(image, **kwargs), max(5, args.repeats // 2))
            ratio = baseline / ours
            ok = ratio >= TARGETS[name]
            failures += not ok
            line += (f" {baseline:7.1f} ({baseline_median:6.1f}) {ratio:7.1f}x {TARGETS[name]:5.1f}x"
                     f" {'ok' if ok else 'MISSED'}")
        print(line)
    print("speed-up = reference best / numpy imresize best (same image, same run)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
