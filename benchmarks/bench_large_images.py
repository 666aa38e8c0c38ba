"""Time and peak memory of ``scripts/main.py`` on large inputs: whole-image mode against the tiled default.

For each input size (outputs at x2 from about 0.25 MP to 12 MP) and step count (1 and 10), it runs the command a user
would (``scripts/main.py --model 0 --num N --gtpath ''`` on one image with the demo's g^d_2.0 kernel) in a
child process, once with ``--tile 0`` (the whole image at once; skipped where the memory model of
``mzsr_tf.tiling`` predicts more than ``--whole-limit``) and once with the defaults (``--tile auto
--max-memory 2G``), and prints:

- the adaptation's seconds (the per-image line), seconds per output megapixel, and the whole process's
  wall time;
- the child's peak resident memory (``wait4``'s ``ru_maxrss``: the whole process, TensorFlow included);
- the tile the default chose;
- the convolution floor: the network's FLOPs for the image (two forward passes at the output size and
  ``N`` forward+backward passes at the input size) at this CPU's 3x3 64->64 convolution throughput,
  measured in the same run (``bench_metatest.measure_conv_gflops``), and the ratio to it.

It ends with the two ratios the tiling targets: seconds per output MP at the largest size against the
size nearest 1 MP (default mode), and default against whole-image mode at 1024x816.

    python benchmarks/bench_large_images.py [--sizes 256x256 512x512 1024x816 2000x1500] [--steps 1 10]

The inputs are a training-free photograph-like image: a demo image resized (cubic) to each size.
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_metatest import forward_flop_per_pixel, measure_conv_gflops  # noqa: E402
from mzsr_tf.config import DEFAULT_MAX_MEMORY  # noqa: E402
from mzsr_tf.data.images import read_image  # noqa: E402
from mzsr_tf.imresize import imresize  # noqa: E402
from mzsr_tf.metrics import to_uint8  # noqa: E402
from mzsr_tf.tiling import MemoryModel  # noqa: E402

DEMO_IMAGE = REPO / "dataset" / "demo" / "Input" / "astronaut.png"
DEMO_KERNEL = REPO / "dataset" / "demo" / "kernel.mat"
LINE = re.compile(r"\] \S+: (?P<seconds>[\d.]+) s, tile (?P<tile>[^,]+), peak memory")


def make_input(folder: pathlib.Path, height: int, width: int) -> pathlib.Path:
    """A ``height x width`` RGB PNG: the demo image resized with cubic interpolation."""
    import imageio.v2 as imageio
    image = read_image(str(DEMO_IMAGE)).astype(np.float64) / 255.0
    big = np.clip(imresize(image, output_shape=(height, width), kernel="cubic"), 0, 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"input_{height}x{width}.png"
    imageio.imwrite(path, to_uint8(big.astype(np.float32)))
    return path


def run_main(input_dir: pathlib.Path, steps: int, tile: str, out_dir: pathlib.Path):
    """One ``scripts/main.py`` process: ``(adaptation seconds, tile, wall seconds, peak RSS bytes)``."""
    argv = [sys.executable, str(REPO / "scripts" / "main.py"), "--model", "0", "--num", str(steps),
            "--gtpath", "", "--inputpath", str(input_dir), "--kernelpath", str(DEMO_KERNEL),
            "--savepath", str(out_dir), "--tile", tile]
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    out, err = child.stdout.read(), child.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{err[-2000:]}")
    match = LINE.search(out)
    return float(match["seconds"]), match["tile"], wall, usage.ru_maxrss * 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["256x256", "512x512", "1024x816", "2000x1500"],
                        help="input sizes HxW (the output is 2x each side)")
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--whole-limit", type=float, default=16e9,
                        help="skip whole-image mode where the memory model predicts more bytes than this")
    args = parser.parse_args(argv)

    gflops = measure_conv_gflops()
    flop_per_pixel = forward_flop_per_pixel()
    model = MemoryModel()
    print(f"conv throughput here: {gflops:.0f} GFLOP/s (3x3 64->64); default --max-memory "
          f"{DEFAULT_MAX_MEMORY / 1024 ** 3:.0f} GiB", flush=True)
    header = "| input | output MP | steps | mode | tile | adapt s | s / output MP | wall s | peak RSS GB | x floor |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        for size in args.sizes:
            height, width = (int(v) for v in size.lower().split("x"))
            folder = scratch / size
            make_input(folder, height, width)
            output_mp = 4 * height * width / 1e6
            for steps in args.steps:
                flop = flop_per_pixel * (2 * output_mp * 1e6 + 3 * steps * height * width)
                floor = flop / (gflops * 1e9)
                for mode, tile in (("whole", "0"), ("default", "auto")):
                    if mode == "whole" and model.whole(height * width, 4 * height * width) > args.whole_limit:
                        print(f"| {size} | {output_mp:.2f} | {steps} | whole | - | skipped: about "
                              f"{model.whole(height * width, 4 * height * width) / 1e9:.0f} GB predicted | | | | |",
                              flush=True)
                        continue
                    seconds, chosen, wall, peak = run_main(folder, steps, tile, scratch / "out")
                    rows[size, steps, mode] = seconds / output_mp
                    print(f"| {size} | {output_mp:.2f} | {steps} | {mode} | {chosen} | {seconds:.1f} | "
                          f"{seconds / output_mp:.1f} | {wall:.1f} | {peak / 1e9:.2f} | {seconds / floor:.2f} |",
                          flush=True)
    sizes = [s for s in args.sizes]
    largest = sizes[-1]
    near_1mp = min(sizes, key=lambda s: abs(4 * np.prod([int(v) for v in s.lower().split("x")]) / 1e6 - 1.0))
    for steps in args.steps:
        if (largest, steps, "default") in rows and (near_1mp, steps, "default") in rows:
            print(f"{steps} step(s): s/MP at {largest} / at {near_1mp} (default mode): "
                  f"{rows[largest, steps, 'default'] / rows[near_1mp, steps, 'default']:.2f}")
        if ("1024x816", steps, "default") in rows and ("1024x816", steps, "whole") in rows:
            print(f"{steps} step(s): default / whole-image s/MP at 1024x816: "
                  f"{rows['1024x816', steps, 'default'] / rows['1024x816', steps, 'whole']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
