"""Meta-task synthesis speed: the ``tf.data`` pipeline vs the reference's numpy loop, in one run.

The reference (``dataGenerator.make_data_tensor`` of github ``JWSoh/MZSR``) builds each meta-batch in
Python: per task a ``generate_kernel``, per patch a numpy ``imresize`` down (numeric kernel, direct
subsampling), noise/clip, and a cubic ``imresize`` back up.  Its ``imresize.py`` and ``gkernel.py``
are imported at run time from ``--reference`` (default ``../ref/MZSR_compat`` beside the repository);
when absent the baseline and the ratio are skipped with a message.  Nothing of it is in this repo.

    python benchmarks/bench_tasks.py [--records dataset/records/train_SR_MZSR.tfrecord]
"""
import argparse
import importlib.util
import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default=os.path.join(REPO_ROOT, "..", "ref", "MZSR_compat"),
                        help="folder with the reference's imresize.py and gkernel.py")
    parser.add_argument("--records", default=None,
                        help="HR patch records to read (default: random patches in memory)")
    parser.add_argument("--meta-batch", type=int, default=5)
    parser.add_argument("--task-batch", type=int, default=8, help="support size; tasks hold twice")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--scale", type=float, nargs="+", default=[2.0])
    parser.add_argument("--batches", type=int, default=100, help="meta-batches timed (pipeline)")
    parser.add_argument("--reference-batches", type=int, default=5, help="meta-batches timed (reference)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def load_reference(folder):
    """The reference's ``imresize`` and ``generate_kernel`` functions, or ``None`` if absent."""
    modules = {}
    for name in ("imresize", "gkernel"):
        path = os.path.join(folder, f"{name}.py")
        if not os.path.isfile(path):
            return None
        spec = importlib.util.spec_from_file_location(f"reference_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[name] = module
    return modules["imresize"].imresize, modules["gkernel"].generate_kernel


def reference_meta_batch(hr_batch, scale_list, meta_batch, task_batch, imresize, generate_kernel):
    """The reference's loop (``make_data_tensor``, noise 0) on float32 HR patches ``[M*2T, P, P, C]``."""
    inputs = []
    for t in range(meta_batch):
        scale = np.random.choice(scale_list, 1)[0]
        kernel = generate_kernel(k1=scale * 2.5, ksize=15)
        task = []
        for idx in range(task_batch * 2):
            hr = hr_batch[t * task_batch * 2 + idx]
            lr = np.clip(imresize(hr, scale=1. / scale, kernel=kernel), 0., 1.)
            task.append(imresize(lr, scale=scale, output_shape=hr.shape, kernel="cubic"))
        inputs.append(np.asarray(task))
    return np.asarray(inputs)


def time_pipeline(args, config):
    import tensorflow as tf
    from mzsr_tf.data.pipelines import meta_task_dataset

    if args.records:
        source = args.records
    else:
        rng = np.random.default_rng(args.seed)
        patches = rng.integers(0, 256, (2000, args.patch, args.patch, 3), dtype=np.uint8)
        source = tf.data.Dataset.from_tensor_slices(patches)
    iterator = iter(meta_task_dataset(source, config, seed=args.seed))
    for _ in range(3):  # tracing and filling the prefetch buffer
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.batches):
        batch = next(iterator)
    seconds = (time.perf_counter() - start) / args.batches
    assert batch["inputa"].shape == (args.meta_batch, args.task_batch, args.patch, args.patch, 3)
    return seconds


def main(argv=None):
    args = parse_args(argv)
    from mzsr_tf.config import MetaTrainConfig

    config = MetaTrainConfig(patch_size=args.patch, meta_batch_size=args.meta_batch,
                             task_batch_size=args.task_batch, scale_list=tuple(args.scale))
    print(f"meta-batch: {args.meta_batch} tasks x {2 * args.task_batch} patches of "
          f"{args.patch}x{args.patch}x3, scales {list(args.scale)}, direct, 15x15 kernels; "
          f"source: {args.records or 'random patches in memory'}")

    pipeline = time_pipeline(args, config)
    print(f"tf.data pipeline : {pipeline * 1000:8.1f} ms per meta-batch  "
          f"({1 / pipeline:6.1f} meta-batches/s)")

    reference = load_reference(args.reference)
    if reference is None:
        print(f"reference baseline skipped: no imresize.py/gkernel.py in {args.reference}")
        return 0
    imresize, generate_kernel = reference
    rng = np.random.default_rng(args.seed)
    n = args.meta_batch * 2 * args.task_batch
    hr_batch = rng.random((n, args.patch, args.patch, 3), dtype=np.float32)
    reference_meta_batch(hr_batch, args.scale, args.meta_batch, args.task_batch, imresize,
                         generate_kernel)  # warm-up
    start = time.perf_counter()
    for _ in range(args.reference_batches):
        reference_meta_batch(hr_batch, args.scale, args.meta_batch, args.task_batch, imresize,
                             generate_kernel)
    baseline = (time.perf_counter() - start) / args.reference_batches
    print(f"reference loop   : {baseline * 1000:8.1f} ms per meta-batch  "
          f"({1 / baseline:6.1f} meta-batches/s)")
    print(f"speed-up         : {baseline / pipeline:8.1f}x (target >= 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
