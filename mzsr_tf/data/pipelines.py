"""``tf.data`` pipelines for the two training stages: bicubic pretraining pairs and meta-learning tasks.

Meta-tasks follow the reference's ``dataGenerator.make_data_tensor`` (github ``JWSoh/MZSR``), but each
task is synthesised inside a parallel ``tf.data`` map instead of a Python loop:

1. HR patches (float32 in [0, 1]) are shuffled, repeated and grouped ``2 * task_batch`` per task;
2. per task: a scale drawn uniformly from the entries of ``scale_list`` (a scale listed k times is drawn k
   times as often), a random anisotropic Gaussian kernel
   ``tf_random_kernel(k1 = scale * kernel_k1_per_scale, ksize = kernel_size, min_eigenvalue =
   kernel_min_eigenvalue)`` (reference: ``scale * 2.5``, 15, 1), the LR ``tf_degrade(hr, kernel, scale,
   ds_method, noise_std)`` (blur, subsample to ``ceil(H / scale)``, noise, clip to [0, 1]) and its cubic
   up-scaling back to ``H x W`` (the ILR); with ``isotropic_kernel_share`` (not in the reference) that share
   of the Gaussians is isotropic (``l2 = l1``); with ``kernel_eigenvalue_sampling`` ``log_uniform`` (not in
   the reference) the variances are log-uniform over their ranges; with ``identity_kernel_share`` (not in
   the reference) that share of the tasks uses the identity kernel instead of the Gaussian (no blur);
3. the first ``task_batch`` pairs are the support set (``inputa``/``labela``), the rest the query set
   (``inputb``/``labelb``); ``meta_batch`` tasks are stacked into ``[meta_batch, task_batch, H, W, C]``.

Randomness is stateless: task ``t`` of a run with ``seed`` draws everything from seeds derived from
``(seed, t)``, so the stream is the same for a given seed whatever the parallelism.  Both pipelines take a
``start_step``: the stream of a run resumed at step ``S`` is the uninterrupted run's from its step ``S + 1``
on (the shuffled records before it are read and dropped before any decoding or synthesis), so no pipeline
state needs saving in a checkpoint.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from mzsr_tf.config import MetaTrainConfig, PretrainConfig
from mzsr_tf.data.records import read_patch_pairs, read_patches
from mzsr_tf.degradation import tf_degrade
from mzsr_tf.imresize import tf_imresize
from mzsr_tf.kernels import identity_kernel, tf_random_kernel

TASK_KEYS = ("inputa", "labela", "inputb", "labelb")
"""A meta-batch: support inputs/labels and query inputs/labels, each ``[tasks, images, H, W, C]``."""

BLUR_FREE_KEY = "blur_free"
"""A meta-batch's per-task flags ``[tasks]`` (float32, 1 where the task's kernel is the identity), present
when ``config.initial_loss_tasks == 'blur_free'`` (the loss before adaptation is taken of those tasks)."""


def task_keys(config: MetaTrainConfig) -> Tuple[str, ...]:
    """The keys of ``config``'s meta-batches that training reads: ``TASK_KEYS`` (and ``BLUR_FREE_KEY``)."""
    return TASK_KEYS + ((BLUR_FREE_KEY,) if config.initial_loss_tasks == "blur_free" else ())


Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], tf.data.Dataset]


def to_float_image(image: tf.Tensor) -> tf.Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; float images are cast to float32 unchanged."""
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def _shuffled_forever(dataset: tf.data.Dataset, buffer_size: int, seed: int) -> tf.data.Dataset:
    if buffer_size > 1:
        dataset = dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    return dataset.repeat()


# --------------------------------------------------------------------------- pretraining

def pretrain_dataset(source: Source, config: PretrainConfig, seed: int,
                     fmt: Optional[str] = None, validate: bool = True, start_step: int = 0) -> tf.data.Dataset:
    """Endless batches ``(ilr, hr)``, each float32 ``[batch, P, P, C]`` in [0, 1], from training step
    ``start_step + 1`` on (``start_step`` batches of the run's stream are skipped).

    ``source`` is pretraining records (``label`` HR ``P x P``, ``image`` LR ``P/s x P/s``; TFRecord or
    HDF5, see ``read_patch_pairs``) or a dataset of ``(hr, lr)`` pairs (uint8 or float in [0, 1]).
    The ILR is the cubic ``tf_imresize`` of the LR by ``config.scale`` to ``P x P``, as the reference's
    ``imresize(lr, scale, kernel='cubic')``.  HR values are ``label / 255`` exactly.
    """
    size, channels = config.patch_size, config.channels
    pairs = pretrain_pairs(source, config, fmt, validate)
    pairs = _shuffled_forever(pairs, config.shuffle_buffer, seed)
    pairs = pairs.skip(start_step * config.batch_size).batch(config.batch_size, drop_remainder=True)

    def upscale(hr, lr):
        hr, lr = to_float_image(hr), to_float_image(lr)  # per batch: cheaper than per patch
        ilr = tf_imresize(lr, float(config.scale), output_shape=(size, size), kernel="cubic")
        return tf.ensure_shape(ilr, [config.batch_size, size, size, channels]), hr

    return pairs.map(upscale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def pretrain_pairs(source: Source, config: PretrainConfig, fmt: Optional[str] = None,
                   validate: bool = True) -> tf.data.Dataset:
    """The ``(hr, lr)`` pairs of ``pretrain_dataset``'s ``source`` (a dataset is returned as it is): the
    records are read and checked here (a ``RecordError`` naming the file)."""
    size, channels = config.patch_size, config.channels
    if size % config.scale:
        raise ValueError(f"patch size {size} is not a multiple of the scale {config.scale}")
    if isinstance(source, tf.data.Dataset):
        return source
    lr_size = size // config.scale
    return read_patch_pairs(source, (size, size, channels), (lr_size, lr_size, channels), fmt=fmt, validate=validate)


# --------------------------------------------------------------------------- meta-tasks

def task_seeds(seed: int, task_index: tf.Tensor) -> tf.Tensor:
    """Three stateless seeds ``[3, 2]`` (scale, kernel, noise) for task ``task_index`` of run ``seed``."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(task_index, tf.int64)])
    return tf.random.experimental.stateless_split(base, num=3)


def _in_share(kernel_seed: tf.Tensor, salt: int, share: float) -> tf.Tensor:
    """Bool scalar, true for ``share`` of the tasks: a uniform drawn from ``kernel_seed`` folded in with ``salt``
    (so the Gaussian's own draws from ``kernel_seed`` stay those of a run without the option)."""
    return tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(kernel_seed, salt)) < share


def synthesize_task(hr: tf.Tensor, scale: float, kernel_seed: tf.Tensor, noise_seed: tf.Tensor,
                    config: MetaTrainConfig) -> dict:
    """One task's degraded inputs at a fixed ``scale`` (a Python number).

    Args:
      hr: float32 ``[N, H, W, C]`` HR patches in [0, 1] (``N = 2 * task_batch``).
      kernel_seed, noise_seed: stateless seeds, int ``[2]``.

    With ``config.isotropic_kernel_share`` > 0 a uniform draw from ``kernel_seed`` (folded in with 2)
    makes that share of the Gaussians isotropic (``l2 = l1``, the same ``l1``). With
    ``config.identity_kernel_share`` > 0 another (folded in with 1) replaces the Gaussian by the identity
    kernel, a one at the centre, in that share of the tasks. Folded-in draws leave the Gaussian's own
    draws those of a run without either option.

    Returns a dict: ``kernel`` float32 ``[k, k]``, ``lr`` float32 ``[N, ceil(H/scale), ceil(W/scale), C]``
    (``tf_degrade``: blur, subsample, noise, clip), ``ilr`` float32 ``[N, H, W, C]`` (cubic up-scaling
    of ``lr`` by ``scale`` to ``H x W``) and ``blur_free`` (float32 scalar, 1 if the kernel is the identity).
    """
    isotropic = tf.constant(False)
    if config.isotropic_kernel_share > 0:
        isotropic = _in_share(kernel_seed, 2, config.isotropic_kernel_share)
    kernel = tf_random_kernel(kernel_seed, k1=scale * config.kernel_k1_per_scale, ksize=config.kernel_size,
                              min_eigenvalue=config.kernel_min_eigenvalue, isotropic=isotropic,
                              log_uniform=config.kernel_eigenvalue_sampling == "log_uniform")
    blur_free = tf.constant(False)
    if config.identity_kernel_share > 0:
        blur_free = _in_share(kernel_seed, 1, config.identity_kernel_share)
        kernel = tf.where(blur_free, identity_kernel(config.kernel_size), kernel)
    lr = tf_degrade(hr, kernel, scale, ds_method=config.ds_method, noise_std=config.noise_std,
                    seed=noise_seed)
    ilr = tf_imresize(lr, scale, output_shape=tf.shape(hr)[1:3], kernel="cubic")
    return {"kernel": kernel, "lr": lr, "ilr": ilr, "blur_free": tf.cast(blur_free, tf.float32)}


def meta_task_dataset(source: Source, config: MetaTrainConfig, seed: int,
                      return_kernels: bool = False, fmt: Optional[str] = None,
                      validate: bool = True, start_step: int = 0) -> tf.data.Dataset:
    """Endless meta-batches of tasks as dicts of float32 tensors in [0, 1], from meta-iteration
    ``start_step + 1`` on (the tasks of the first ``start_step`` meta-batches are skipped unsynthesised).

    ``inputa``, ``labela`` (support) and ``inputb``, ``labelb`` (query) are each
    ``[meta_batch, task_batch, P, P, C]`` (``config.meta_batch_size``, ``config.task_batch_size``,
    ``config.patch_size``, ``config.channels``); inputs are ILR images, labels HR patches.
    With ``return_kernels`` the dict also holds ``kernels`` ``[meta_batch, k, k]`` and ``scales``
    ``[meta_batch]``, the kernel and scale of each task; with ``config.initial_loss_tasks == 'blur_free'``
    it holds ``BLUR_FREE_KEY`` ``[meta_batch]`` (1.0 for a task whose kernel is the identity, else 0.0).

    ``source`` is record files (see ``read_patches``) or a dataset of HR patches ``[P, P, C]``
    (uint8, or float in [0, 1]).  Deterministic for a given ``seed``.
    """
    size, channels = config.patch_size, config.channels
    task_batch = config.task_batch_size
    scales = [float(s) for s in config.scale_list]
    if not scales or min(scales) < 1:
        raise ValueError(f"scale_list must hold scales >= 1, got {config.scale_list}")
    if isinstance(source, tf.data.Dataset):
        patches = source
    else:
        patches = read_patches(source, (size, size, channels), fmt=fmt, validate=validate)
    # Shuffle the compact (usually uint8) patches; convert per task, not per patch.
    patches = _shuffled_forever(patches, config.shuffle_buffer, seed)
    tasks = patches.batch(2 * task_batch, drop_remainder=True).enumerate()
    tasks = tasks.skip(start_step * config.meta_batch_size)

    def make_task(task_index, hr):
        hr = tf.ensure_shape(to_float_image(hr), [2 * task_batch, size, size, channels])
        scale_seed, kernel_seed, noise_seed = tf.unstack(task_seeds(seed, task_index))
        choice = tf.random.stateless_uniform([], scale_seed, 0, len(scales), dtype=tf.int32)

        def branch(scale):
            def run():
                out = synthesize_task(hr, scale, kernel_seed, noise_seed, config)
                return out["ilr"], out["kernel"], out["blur_free"]
            return run

        if len(scales) == 1:
            ilr, kernel, blur_free = branch(scales[0])()
        else:
            ilr, kernel, blur_free = tf.switch_case(choice, [branch(s) for s in scales])
        ilr = tf.ensure_shape(ilr, [2 * task_batch, size, size, channels])
        task = {"inputa": ilr[:task_batch], "labela": hr[:task_batch],
                "inputb": ilr[task_batch:], "labelb": hr[task_batch:]}
        if config.initial_loss_tasks == "blur_free":
            task[BLUR_FREE_KEY] = blur_free
        if return_kernels:
            task["kernels"] = tf.ensure_shape(kernel, [config.kernel_size, config.kernel_size])
            task["scales"] = tf.gather(tf.constant(scales, tf.float32), choice)
        return task

    tasks = tasks.map(make_task, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return tasks.batch(config.meta_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
