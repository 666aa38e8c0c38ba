"""Speed of the meta-test on Set5 / g2.0 against the reference, measured in the same run.

For ``--num 1`` and ``--num 10`` (``--model 0`` schedule, Pretrained weights) it reports:

- mzsr-tf in this process: the whole set "cold" (first pass, including the one-off tracing of the
  adaptation ``tf.function``) and "warm" (median of the following passes), per image and in total;
- the reference (github JWSoh/MZSR under ``tf.compat.v1``) run through an external harness in a child
  process: its per-image times and its total including graph build and session creation (both
  exclude Python start-up and the TensorFlow import, as ours do);
- both tools as whole commands (``python scripts/main.py`` vs the reference's ``python main.py``):
  process wall time including interpreter start-up and the TensorFlow import;
- the FLOPs of the work (two full-size forward passes and ``num`` forward+backward passes on the LR
  image per image) and the achieved GFLOP/s against this CPU's conv throughput measured here (a
  64->64 3x3 convolution on 1x256x256x64).

The reference is not part of this repository. Point ``--harness`` at ``reference_harness.py`` (a
wrapper that runs a ``tf.compat.v1`` copy of the reference in a child process) and ``--reference``
at that copy; without them the baseline columns are skipped with a message.

    python benchmarks/bench_metatest.py [--passes 3] [--harness PATH] [--reference DIR]
"""
import argparse
import importlib.util
import os
import pathlib
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mzsr_tf import kernels, metrics  # noqa: E402
from mzsr_tf.checkpoints import load_weights  # noqa: E402
from mzsr_tf.config import preset_for_model  # noqa: E402
from mzsr_tf.meta_test import MetaTester, paired_paths, read_pair  # noqa: E402
from mzsr_tf.model import MZSRNet, param_shapes  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "mzsr_reference"
TARGETS = {1: 1.8, 10: 1.5}  # required speed-up of the whole set over the reference


def forward_flop_per_pixel() -> int:
    """Multiply-adds x 2 of one forward pass per output pixel (convolutions only)."""
    return sum(2 * int(np.prod(shape)) for name, shape in param_shapes().items() if name.endswith("kernel"))


def measure_conv_gflops(repeats: int = 10) -> float:
    """This CPU's float32 throughput on the network's dominant layer shape (64->64, 3x3, 256x256)."""
    x = tf.random.uniform([1, 256, 256, 64])
    w = tf.random.uniform([3, 3, 64, 64])
    conv = tf.function(lambda x: tf.nn.conv2d(x, w, 1, "SAME"))
    conv(x).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        conv(x).numpy()
        times.append(time.perf_counter() - start)
    return 2 * 256 * 256 * 64 * 64 * 9 / min(times) / 1e9


def set5_flop(inputs, gts, num_steps: int) -> float:
    per_pixel = forward_flop_per_pixel()
    hr_pixels = sum(gt.shape[0] * gt.shape[1] for gt in gts)
    lr_pixels = sum(lr.shape[0] * lr.shape[1] for lr in inputs)
    return per_pixel * (2 * hr_pixels + 3 * num_steps * lr_pixels)


def time_ours(tester, inputs, gts, kernel, passes):
    """First pass (total, per image), warm passes (median total, per-image medians), average final PSNR.

    The first pass over the set includes the one-off tracing of the adaptation function (at the
    first image); the reference's first image likewise pays its session warm-up.
    """
    totals, per_image, psnrs = [], [], []
    for _ in range(passes):
        times = []
        start = time.perf_counter()
        for lr, gt in zip(inputs, gts):
            t0 = time.perf_counter()
            result = tester.adapt(lr, kernel, output_shape=gt.shape[:2])
            times.append(time.perf_counter() - t0)
            psnrs.append(metrics.psnr_y(result.sr, gt, 2))
        totals.append(time.perf_counter() - start)
        per_image.append(times)
    warm = per_image[1:] or per_image
    return (totals[0], per_image[0], statistics.median(totals[1:] or totals),
            [statistics.median(t) for t in zip(*warm)], float(np.mean(psnrs[:len(inputs)])))


def load_harness(path):
    if path is None or not pathlib.Path(path).exists():
        return None, f"no reference harness at {path}"
    spec = importlib.util.spec_from_file_location("reference_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, None


def command_wall(argv, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=3, help="passes over Set5 (the first is 'cold')")
    parser.add_argument("--harness", default=str(REPO.parent / "ref" / "golden_scripts" / "reference_harness.py"))
    parser.add_argument("--reference", default=str(REPO.parent / "ref" / "MZSR_compat"))
    parser.add_argument("--no-commands", action="store_true", help="skip the whole-command timings")
    args = parser.parse_args(argv)

    input_dir, gt_dir = SHARED / "Input" / "g20" / "Set5", SHARED / "GT" / "Set5"
    kernel_path, checkpoint = SHARED / "Input" / "g20" / "kernel.mat", SHARED / "Pretrained" / "Pretrained"
    if not input_dir.exists():
        print(f"needs {SHARED} (../shared beside the repository)")
        return 2
    pairs = paired_paths(str(input_dir), str(gt_dir))
    inputs, gts = map(list, zip(*(read_pair(lr_path, gt_path, 2) for lr_path, gt_path in pairs)))
    kernel = kernels.load_kernel(kernel_path)
    model = MZSRNet()
    load_weights(model, str(checkpoint))
    harness, why = load_harness(args.harness)
    if harness is not None and not harness.reference_available(args.reference):
        harness, why = None, f"no reference copy at {args.reference}"
    if harness is None:
        print(f"reference baseline skipped: {why}")

    peak = measure_conv_gflops()
    print(f"CPU conv throughput (64->64 3x3 on 1x256x256x64, float32): {peak:.0f} GFLOP/s")
    print(f"{'':>8} {'':>26} {'mzsr-tf':>10} {'reference':>10} {'speed-up':>9} {'target':>7}")
    failed = False
    for num in (1, 10):
        reference = None
        if harness is not None:
            per_image, seconds = harness.reference_metatest(
                str(input_dir), str(gt_dir), str(kernel_path), str(checkpoint), model=0, num=num,
                reference_dir=args.reference)
            reference = {"set": seconds["total"], "images 2-5": sum(seconds["per_image"][1:]),
                         "psnr": float(np.mean([r["final_psnr"] for r in per_image]))}
        for precision in ("float32", "mixed_bfloat16"):
            # a fresh tester per row, so that its first pass pays the tracing like the reference's build
            config = preset_for_model(0).adaptation_config(num_steps=num, precision=precision)
            tester = MetaTester(model.trainable_variables, config)
            cold, cold_images, warm, warm_images, psnr = time_ours(tester, inputs, gts, kernel, args.passes)
            print(f"--num {num}, {precision}: average final PSNR {psnr:.4f} dB"
                  + (f" (reference {reference['psnr']:.4f})" if reference else ""))
            rows = [("whole set, first pass", cold, "set"),
                    ("images 2-5, first pass", sum(cold_images[1:]), "images 2-5"),
                    ("whole set, warm", warm, None)]
            for label, ours, key in rows:
                ref = reference[key] if reference and key else None
                ratio = f"{ref / ours:8.2f}x" if ref else " " * 9
                target = f"{TARGETS[num]:.1f}x" if ref and key == "set" else ""
                ref_text = f"{ref:9.2f}s" if ref else " " * 10
                print(f"{'':>8} {label:>26} {ours:9.2f}s {ref_text} {ratio} {target:>7}")
                if ref and key == "set" and precision == "float32" and ref / ours < TARGETS[num]:
                    failed = True
            names = [pathlib.Path(lr_path).stem for lr_path, _ in pairs]
            print("         per image, warm: " + ", ".join(f"{n} {t:.2f}s" for n, t in zip(names, warm_images)))
            if precision == "float32":
                flop = set5_flop(inputs, gts, num)
                print(f"         {flop / 1e9:.0f} GFLOP per pass: {flop / 1e9 / warm:.0f} GFLOP/s achieved warm "
                      f"= {100 * flop / 1e9 / warm / peak:.0f}% of the measured conv throughput")

    if not args.no_commands:
        common = ["--inputpath", str(input_dir), "--gtpath", str(gt_dir), "--kernelpath", str(kernel_path),
                  "--model", "0"]
        for num in (1, 10):
            ours = command_wall([sys.executable, str(REPO / "scripts" / "main.py"), *common, "--num", str(num),
                                 "--checkpoint", str(checkpoint), "--savepath", "/tmp/bench_metatest_ours"], REPO)
            line = f"whole command, --num {num}: mzsr-tf {ours:.1f} s"
            if harness is not None:
                ref = command_wall([sys.executable, "main.py", *common, "--num", str(num), "--ckpt", str(checkpoint),
                                    "--savepath", "/tmp/bench_metatest_ref"], args.reference)
                line += f", reference {ref:.1f} s, speed-up {ref / ours:.2f}x"
            print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
