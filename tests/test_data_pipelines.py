"""mzsr_tf.data.pipelines: meta-task and pretraining batches against the numpy degradation."""
import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf.config import MetaTrainConfig, PretrainConfig
from mzsr_tf.data.pipelines import meta_task_dataset, pretrain_dataset, synthesize_task
from mzsr_tf.data.records import write_records
from mzsr_tf.degradation import degrade
from mzsr_tf.imresize import imresize

PATCH = 24
TOLERANCE = 2e-5  # float32 pipeline vs float64 numpy recipe

CONFIG = MetaTrainConfig(patch_size=PATCH, meta_batch_size=3, task_batch_size=2, shuffle_buffer=1)


def _smooth_patches(n, size=PATCH, seed=0):
    """Varied, smooth uint8 patches (sums of random low-frequency waves)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.uint8)
    for k in range(n):
        f = rng.uniform(0.5, 3.0, (3, 2))
        phase = rng.uniform(0, 2 * np.pi, 3)
        waves = [np.sin(2 * np.pi * (f[c, 0] * x + f[c, 1] * y) + phase[c]) for c in range(3)]
        out[k] = np.round(127.5 + 120 * np.stack(waves, axis=2)).astype(np.uint8)
    return out


PATCHES = _smooth_patches(40)


def _source():
    return tf.data.Dataset.from_tensor_slices(PATCHES)


def _first(dataset):
    return {k: v.numpy() for k, v in next(iter(dataset)).items()}


def _numpy_ilr(hr, kernel, scale, ds_method="direct"):
    """The reference recipe in numpy (float64): degrade with the task kernel, cubic back to HR size."""
    lr = degrade(hr.astype(np.float64), kernel.astype(np.float64), scale, ds_method)
    return imresize(lr, scale=scale, output_shape=hr.shape, kernel="cubic")


def test_task_tensor_shapes_and_labels():
    batch = _first(meta_task_dataset(_source(), CONFIG, seed=0, return_kernels=True))
    for key in ("inputa", "labela", "inputb", "labelb"):
        assert batch[key].shape == (3, 2, PATCH, PATCH, 3) and batch[key].dtype == np.float32
    assert batch["kernels"].shape == (3, 15, 15) and batch["scales"].shape == (3,)
    # With a shuffle buffer of 1 the tasks take the patches in order: support first, then query.
    labels = np.concatenate([batch["labela"], batch["labelb"]], axis=1).reshape(-1, PATCH, PATCH, 3)
    np.testing.assert_array_equal(labels, PATCHES[:12].astype(np.float32) / 255)


def test_inputs_are_the_degradation_with_the_task_kernel():
    """Support and query of a task both equal the numpy recipe with that task's one kernel."""
    batch = _first(meta_task_dataset(_source(), CONFIG, seed=7, return_kernels=True))
    for t in range(3):
        kernel = batch["kernels"][t]
        assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
        for inputs, labels in [("inputa", "labela"), ("inputb", "labelb")]:
            for hr, ilr in zip(batch[labels][t], batch[inputs][t]):
                np.testing.assert_allclose(ilr, _numpy_ilr(hr, kernel, 2.0), atol=TOLERANCE, rtol=0)


def test_kernels_differ_across_tasks():
    batch = _first(meta_task_dataset(_source(), CONFIG, seed=7, return_kernels=True))
    kernels = batch["kernels"]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(kernels[a] - kernels[b]).max() > 1e-3
    # Another task's kernel does not reproduce a task's input.
    hr = batch["labela"][1][0]
    wrong = _numpy_ilr(hr, kernels[0], 2.0)
    assert np.abs(wrong - batch["inputa"][1][0]).max() > 10 * TOLERANCE


def test_synthesize_task_lr_equals_degradation():
    hr = PATCHES[:4].astype(np.float32) / 255
    out = synthesize_task(tf.constant(hr), 2.0, tf.constant([1, 2]), tf.constant([3, 4]), CONFIG)
    kernel = out["kernel"].numpy()
    assert out["lr"].shape == (4, PATCH // 2, PATCH // 2, 3)
    for k in range(4):
        np.testing.assert_allclose(out["lr"][k], degrade(hr[k].astype(np.float64), kernel.astype(np.float64), 2.0),
                                   atol=TOLERANCE, rtol=0)


def _kernel_moments(kernel):
    """Eigenvalues of the second-moment matrix of a normalised 2-D kernel about its centre."""
    size = kernel.shape[0]
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    k = kernel / kernel.sum()
    cov = [[(k * x * x).sum(), (k * x * y).sum()], [(k * x * y).sum(), (k * y * y).sum()]]
    return np.linalg.eigvalsh(np.array(cov))


def test_task_kernels_follow_kernel_min_eigenvalue():
    """With eigenvalues drawn in [0.2, 0.3) (k1 = 2 x 0.15) every task kernel is nearly a delta: its sampled
    second moments stay below 0.3 (a Gaussian of variance 0.2 sampled on the pixel grid has about 0.14), while
    the reference's range [1, 5) never gives a moment below 0.9."""
    hr = tf.constant(PATCHES[:2].astype(np.float32) / 255)
    sharp = dataclasses.replace(CONFIG, kernel_min_eigenvalue=0.2, kernel_k1_per_scale=0.15)
    for seed in range(5):
        sharp_moments = _kernel_moments(synthesize_task(hr, 2.0, tf.constant([seed, 1]), tf.constant([0, 0]),
                                                        sharp)["kernel"].numpy())
        reference_moments = _kernel_moments(synthesize_task(hr, 2.0, tf.constant([seed, 1]), tf.constant([0, 0]),
                                                            CONFIG)["kernel"].numpy())
        assert sharp_moments.max() < 0.3, sharp_moments
        assert reference_moments.min() > 0.9, reference_moments


@pytest.mark.parametrize("value", [0.0, -1.0, 5.5])
def test_kernel_min_eigenvalue_is_checked(value):
    with pytest.raises(ValueError, match=r"kernel_min_eigenvalue must be in \(0, min\(scale_list\) \* "
                                         r"kernel_k1_per_scale = 5\]"):
        MetaTrainConfig(kernel_min_eigenvalue=value)


@pytest.mark.parametrize("scale", [2.2, 3.0, 4.0])
def test_other_scales_follow_the_reference_size_rules(scale):
    hr = PATCHES[:2].astype(np.float32) / 255
    out = synthesize_task(tf.constant(hr), scale, tf.constant([5, 6]), tf.constant([0, 0]), CONFIG)
    lr_size = math.ceil(PATCH / scale)  # 24 / 2.2 -> 11, / 3 -> 8, / 4 -> 6
    assert out["lr"].shape == (2, lr_size, lr_size, 3) and out["ilr"].shape == (2, PATCH, PATCH, 3)
    kernel = out["kernel"].numpy()
    for k in range(2):
        np.testing.assert_allclose(out["ilr"][k], _numpy_ilr(hr[k], kernel, scale), atol=TOLERANCE, rtol=0)


def test_multi_scale_tasks_use_their_own_scale():
    config = dataclasses.replace(CONFIG, scale_list=(2.0, 3.0), meta_batch_size=6)
    batch = _first(meta_task_dataset(_source().repeat(), config, seed=1, return_kernels=True))
    assert set(batch["scales"].tolist()) == {2.0, 3.0}
    for t, scale in enumerate(batch["scales"]):
        hr = batch["labelb"][t][1]
        np.testing.assert_allclose(batch["inputb"][t][1], _numpy_ilr(hr, batch["kernels"][t], float(scale)),
                                   atol=TOLERANCE, rtol=0)


def test_a_scale_listed_k_times_is_drawn_k_times_as_often():
    """(2.0, 2.0, 2.0, 4.0): 2.0 in 3/4 of 200 tasks (150 +- 4 standard deviations of 6.1); (2.0, 4.0): half."""
    def share_of_x2(scale_list):
        config = dataclasses.replace(CONFIG, scale_list=scale_list, meta_batch_size=100)
        batches = meta_task_dataset(_source().repeat(), config, seed=3, return_kernels=True).take(2)
        return sum(int(np.sum(batch["scales"].numpy() == 2.0)) for batch in batches)
    assert 126 <= share_of_x2((2.0, 2.0, 2.0, 4.0)) <= 174
    assert 76 <= share_of_x2((2.0, 4.0)) <= 124


def test_bicubic_down_sampling():
    config = dataclasses.replace(CONFIG, ds_method="bicubic")
    batch = _first(meta_task_dataset(_source(), config, seed=2, return_kernels=True))
    hr = batch["labela"][0][0]
    np.testing.assert_allclose(batch["inputa"][0][0], _numpy_ilr(hr, batch["kernels"][0], 2.0, "bicubic"),
                               atol=TOLERANCE, rtol=0)


def test_noise_is_added_and_seeded():
    config = dataclasses.replace(CONFIG, noise_std=0.05)
    noisy = _first(meta_task_dataset(_source(), config, seed=4, return_kernels=True))
    again = _first(meta_task_dataset(_source(), config, seed=4, return_kernels=True))
    np.testing.assert_array_equal(noisy["inputa"], again["inputa"])
    clean = _numpy_ilr(noisy["labela"][0][0], noisy["kernels"][0], 2.0)
    difference = np.abs(noisy["inputa"][0][0] - clean)
    assert 0.01 < difference.mean() < 0.1  # noise of std 0.05, smoothed by the cubic up-scaling


def test_deterministic_for_a_seed():
    config = dataclasses.replace(CONFIG, shuffle_buffer=16)

    def two_batches(seed):
        iterator = iter(meta_task_dataset(_source(), config, seed=seed, return_kernels=True))
        return [{k: v.numpy() for k, v in next(iterator).items()} for _ in range(2)]

    first, again, other = two_batches(3), two_batches(3), two_batches(4)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(first[0]["labela"], other[0]["labela"])
    assert not np.array_equal(first[0]["kernels"], other[0]["kernels"])
    assert not np.array_equal(first[0]["kernels"], first[1]["kernels"])


@pytest.mark.parametrize("name, fmt", [("p.tfrecord", "tfrecord"), ("p.h5", "hdf5")])
def test_meta_tasks_from_record_files(tmp_path, name, fmt):
    write_records(tmp_path / name, [{"label": PATCHES}], len(PATCHES), fmt)
    batch = _first(meta_task_dataset(tmp_path / name, CONFIG, seed=0))
    assert batch["inputa"].shape == (3, 2, PATCH, PATCH, 3)
    np.testing.assert_array_equal(batch["labela"][0][0], PATCHES[0].astype(np.float32) / 255)


def _pair_records(tmp_path, count):
    """``count`` pretraining pairs (12x12 HR, 6x6 LR) written to ``pairs.tfrecord``; returns ``(hr, lr)``."""
    hr = _smooth_patches(count, 12, seed=1)
    lr = _smooth_patches(count, 6, seed=2)
    write_records(tmp_path / "pairs.tfrecord", [{"label": hr, "image": lr}], count)
    return hr, lr


def test_pretrain_batches_upscale_the_lr_with_cubic_imresize(tmp_path):
    hr, lr = _pair_records(tmp_path, 6)
    config = PretrainConfig(patch_size=12, scale=2, batch_size=3, shuffle_buffer=1)
    iterator = iter(pretrain_dataset(tmp_path / "pairs.tfrecord", config, seed=0))
    for start in (0, 3):
        ilr, label = (t.numpy() for t in next(iterator))
        assert ilr.shape == label.shape == (3, 12, 12, 3)
        np.testing.assert_array_equal(label, hr[start:start + 3].astype(np.float32) / 255)
        for k in range(3):
            expected = imresize(lr[start + k].astype(np.float64) / 255, scale=2, kernel="cubic")
            np.testing.assert_allclose(ilr[k], expected, atol=TOLERANCE, rtol=0)


def test_pretrain_patch_must_divide_by_the_scale():
    with pytest.raises(ValueError, match="patch size 13 is not a multiple of the scale 2"):
        pretrain_dataset("unused", PretrainConfig(patch_size=13), seed=0)


def test_identity_tasks_are_the_clean_bicubic_scenario():
    """With identity_kernel_share=1 and bicubic subsampling a task's LR is imresize(HR, 1/2) with MATLAB's
    antialiased cubic (the `bic` test sets' recipe), with no blur before it."""
    hr = PATCHES[:3].astype(np.float32) / 255
    clean = dataclasses.replace(CONFIG, ds_method="bicubic", identity_kernel_share=1.0)
    out = synthesize_task(tf.constant(hr), 2.0, tf.constant([1, 2]), tf.constant([3, 4]), clean)
    expected_kernel = np.zeros((15, 15))
    expected_kernel[7, 7] = 1
    np.testing.assert_array_equal(out["kernel"].numpy(), expected_kernel)
    for k in range(3):
        np.testing.assert_allclose(out["lr"][k], imresize(hr[k].astype(np.float64), 0.5, kernel="cubic"),
                                   atol=TOLERANCE, rtol=0)
    blurred = synthesize_task(tf.constant(hr), 2.0, tf.constant([1, 2]), tf.constant([3, 4]),
                              dataclasses.replace(clean, identity_kernel_share=0.0))
    assert np.abs(blurred["lr"].numpy() - out["lr"].numpy()).max() > 0.01  # a Gaussian task does blur


def test_identity_kernel_share_is_the_share_of_identity_tasks():
    """About half the tasks of share 0.5 (200 tasks: 0.5 +- 4 standard deviations) have the identity kernel,
    and every other task keeps the very Gaussian it has without the option."""
    hr = tf.constant(PATCHES[:2].astype(np.float32) / 255)
    half = dataclasses.replace(CONFIG, identity_kernel_share=0.5)
    identity = 0
    for seed in range(200):
        kernel = synthesize_task(hr, 2.0, tf.constant([seed, 9]), tf.constant([0, 0]), half)["kernel"].numpy()
        if kernel.max() == 1.0:
            identity += 1
        else:
            plain = synthesize_task(hr, 2.0, tf.constant([seed, 9]), tf.constant([0, 0]), CONFIG)["kernel"]
            np.testing.assert_array_equal(kernel, plain.numpy())
    assert 72 <= identity <= 128, identity


def test_blur_free_flags_mark_the_identity_kernel_tasks():
    """With initial_loss_tasks='blur_free' each meta-batch flags its tasks whose kernel is the identity
    (read off the returned kernels: a one at the centre), and holds no flags otherwise."""
    flagged = dataclasses.replace(CONFIG, meta_batch_size=8, identity_kernel_share=0.5, initial_loss_weight=0.1,
                                  initial_loss_tasks="blur_free")
    seen = set()
    for batch in meta_task_dataset(_source().repeat(), flagged, seed=5, return_kernels=True).take(3):
        identity = [float(kernel.numpy().max() == 1.0) for kernel in batch["kernels"]]
        np.testing.assert_array_equal(batch["blur_free"].numpy(), identity)
        seen.update(identity)
    assert seen == {0.0, 1.0}  # both kinds of task occurred
    plain = _first(meta_task_dataset(_source(), dataclasses.replace(flagged, initial_loss_tasks="all"), seed=5))
    assert "blur_free" not in plain


def _isotropic_gaussian(ksize, variance):
    """exp(-(x^2 + y^2) / (2 variance)) about the kernel's centre, normalised (numpy, float64)."""
    coords = np.arange(ksize) - (ksize / 2 - 0.5)
    kernel = np.exp(-(coords[None, :] ** 2 + coords[:, None] ** 2) / (2 * variance))
    return kernel / kernel.sum()


def test_isotropic_kernel_share_is_the_share_of_isotropic_gaussians():
    """About half the Gaussians of share 0.5 (200 tasks: 0.5 +- 4 standard deviations) are isotropic: each
    equals the hand-written isotropic Gaussian whose variance is read off its centre row, lies in the
    variance range, and is symmetric under transposition (which no anisotropic task kernel here is); every
    other task keeps the very Gaussian it has without the option."""
    hr = tf.constant(PATCHES[:2].astype(np.float32) / 255)
    half = dataclasses.replace(CONFIG, isotropic_kernel_share=0.5, kernel_min_eigenvalue=0.2)
    plain_config = dataclasses.replace(half, isotropic_kernel_share=0.0)
    isotropic = 0
    for seed in range(200):
        kernel = synthesize_task(hr, 2.0, tf.constant([seed, 9]), tf.constant([0, 0]), half)["kernel"].numpy()
        plain = synthesize_task(hr, 2.0, tf.constant([seed, 9]), tf.constant([0, 0]), plain_config)["kernel"]
        if np.abs(kernel - kernel.T).max() < 1e-7:
            isotropic += 1
            variance = -0.5 / np.log(kernel[7, 8] / kernel[7, 7])
            assert 0.2 - 1e-4 <= variance < 5.0 + 1e-4, variance
            np.testing.assert_allclose(kernel, _isotropic_gaussian(15, variance), atol=1e-6, rtol=0)
        else:
            np.testing.assert_array_equal(kernel, plain.numpy())
    assert 72 <= isotropic <= 128, isotropic


def test_log_uniform_sampling_puts_half_the_variances_below_the_geometric_mean():
    """Log-uniform over [0.2, 5): l1 falls below sqrt(0.2 * 5) = 1 with probability 1/2 (uniform: (1 - 0.2) /
    4.8 = 1/6). Over 200 tasks the share of kernels whose larger variance (the largest eigenvalue of the
    kernel's second moments, i.e. l1 up to truncation at the kernel's border) is below 1 lies within
    0.5 +- 4 standard deviations (uniform sampling gives 39 of these 200 tasks)."""
    hr = tf.constant(PATCHES[:2].astype(np.float32) / 255)
    log_config = dataclasses.replace(CONFIG, kernel_min_eigenvalue=0.2, kernel_eigenvalue_sampling="log_uniform")
    below = 0
    for seed in range(200):
        kernel = synthesize_task(hr, 2.0, tf.constant([seed, 9]), tf.constant([0, 0]), log_config)["kernel"].numpy()
        below += _kernel_moments(kernel)[-1] < 1.0
    assert 72 <= below <= 128, below


@pytest.mark.parametrize("changes, message", [
    ({"kernel_eigenvalue_sampling": "gamma"}, "kernel_eigenvalue_sampling must be one of uniform, log_uniform"),
    ({"identity_kernel_share": 1.5}, "identity_kernel_share"),
    ({"identity_kernel_share": -0.1}, "identity_kernel_share"),
    ({"isotropic_kernel_share": 1.5}, "isotropic_kernel_share"),
    ({"isotropic_kernel_share": -0.1}, "isotropic_kernel_share"),
    ({"identity_kernel_share": 0.2, "kernel_size": 14}, "identity_kernel_share needs an odd kernel_size"),
    ({"initial_loss_tasks": "blur_free", "initial_loss_weight": 0.1}, "needs identity_kernel_share > 0"),
    ({"initial_loss_tasks": "blur_free", "identity_kernel_share": 0.5}, "initial_loss_weight > 0"),
    ({"initial_loss_tasks": "blurred"}, "initial_loss_tasks must be one of all, blur_free"),
])
def test_kernel_shares_and_the_anchor_tasks_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        MetaTrainConfig(**changes)


# --------------------------------------------------------------------------- resuming: (seed, step) -> position

@pytest.mark.parametrize("name, fmt", [("p.tfrecord", "tfrecord"), ("p.h5", "hdf5")])
def test_meta_tasks_from_a_start_step_are_the_uninterrupted_streams(tmp_path, name, fmt):
    # A shuffle buffer smaller than the 40 patches and 6 meta-batches of 12 patches: the stream crosses
    # two reshuffled epochs, and the buffer's content at step 4 is not saved anywhere.
    write_records(tmp_path / name, [{"label": PATCHES}], len(PATCHES), fmt)
    config = dataclasses.replace(CONFIG, shuffle_buffer=16)
    straight = iter(meta_task_dataset(tmp_path / name, config, seed=5))
    batches = [{k: v.numpy() for k, v in next(straight).items()} for _ in range(6)]
    assert not np.array_equal(batches[0]["labela"], batches[1]["labela"])
    resumed = iter(meta_task_dataset(tmp_path / name, config, seed=5, start_step=4))
    for expected in batches[4:]:
        got = next(resumed)
        for key in expected:
            np.testing.assert_array_equal(got[key].numpy(), expected[key], err_msg=key)


def test_pretrain_batches_from_a_start_step_are_the_uninterrupted_streams(tmp_path):
    _pair_records(tmp_path, 10)
    config = PretrainConfig(patch_size=12, scale=2, batch_size=3, shuffle_buffer=4)
    straight = iter(pretrain_dataset(tmp_path / "pairs.tfrecord", config, seed=3))
    labels = [next(straight)[1].numpy() for _ in range(7)]  # 21 pairs: three epochs of 10
    resumed = iter(pretrain_dataset(tmp_path / "pairs.tfrecord", config, seed=3, start_step=5))
    for expected in labels[5:]:
        np.testing.assert_array_equal(next(resumed)[1].numpy(), expected)
    # and the position does depend on the step: step 5's batch is not step 0's
    assert not np.array_equal(labels[5], labels[0])
