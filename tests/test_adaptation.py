"""Tests of the meta-test (Algorithm 2): the in-graph loop, its invariants and the reference's numbers."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import adaptation, degradation, kernels
from mzsr_tf.config import ModelConfig, preset_for_model
from mzsr_tf.imresize import imresize
from mzsr_tf.meta_test import MetaTester
from mzsr_tf.model import MZSRNet
from synthetic import cosine_image


def _smooth_image(rng, height, width):
    """A varied but smooth RGB image, float32 in [0, 1]."""
    return cosine_image(rng, height, width).astype(np.float32)


@pytest.fixture(scope="module")
def small_model():
    model = MZSRNet(ModelConfig(width=16), seed=3)
    model(tf.zeros([1, 8, 8, 3]))
    return model


@pytest.fixture(scope="module")
def blur():
    return kernels.isotropic_gaussian(9, 1.5).astype(np.float32)


def test_in_graph_loop_equals_eager_unrolled_steps(small_model, blur):
    rng = np.random.default_rng(0)
    lr = _smooth_image(rng, 24, 20)
    config = preset_for_model(0).adaptation_config(num_steps=5)
    result = MetaTester(small_model.trainable_variables, config).adapt(lr, blur)

    # the same algorithm written out step by step, from the numpy degradation and resize
    son = np.clip(degradation.degrade(lr.astype(np.float64), blur, 2.0), 0, 1)
    son_ilr = imresize(son, scale=2.0, output_shape=lr.shape, kernel="cubic")
    params, losses = adaptation.adapt_steps(
        small_model.trainable_variables, tf.constant(son_ilr[None], tf.float32),
        tf.constant(lr[None]), config.inner_lr.rates(5))
    np.testing.assert_allclose(result.son_losses, [l.numpy() for l in losses], rtol=2e-4)
    lr_ilr = imresize(lr.astype(np.float64), scale=2.0, output_shape=(48, 40), kernel="cubic")
    from mzsr_tf.model import forward
    expected = np.clip(forward(params, tf.constant(lr_ilr[None], tf.float32))[0].numpy(), 0, 1)
    np.testing.assert_allclose(result.sr, expected, atol=2e-4)
    assert result.sr.shape == (48, 40, 3)


def test_steps_lower_the_son_loss_and_weights_are_untouched(small_model, blur):
    rng = np.random.default_rng(1)
    lr = _smooth_image(rng, 32, 32)
    before = [v.numpy().copy() for v in small_model.trainable_variables]
    config = preset_for_model(0).adaptation_config(num_steps=4)
    result = MetaTester(small_model.trainable_variables, config).adapt(lr, blur)
    assert np.all(np.diff(result.son_losses) < 0), result.son_losses
    for old, var in zip(before, small_model.trainable_variables):
        np.testing.assert_array_equal(old, var.numpy())


def test_zero_steps_returns_the_initial_output(small_model, blur):
    lr = _smooth_image(np.random.default_rng(2), 16, 18)
    config = preset_for_model(0).adaptation_config(num_steps=0)
    result = MetaTester(small_model.trainable_variables, config).adapt(lr, blur)
    np.testing.assert_array_equal(result.sr, result.initial_sr)
    assert result.son_losses.shape == (0,)


def test_one_trace_serves_every_image_size_and_step_count(small_model, blur):
    tester = MetaTester(small_model.trainable_variables, preset_for_model(0).adaptation_config(num_steps=2))
    rng = np.random.default_rng(3)
    for shape in [(16, 16), (21, 17), (30, 24)]:
        tester.adapt(_smooth_image(rng, *shape), blur)
    tester.config = preset_for_model(0).adaptation_config(num_steps=3)
    tester.adapt(_smooth_image(rng, 16, 16), blur)
    assert tester._run_with_kernel.experimental_get_tracing_count() == 1


def test_bicubic_son_without_kernel(small_model):
    lr = _smooth_image(np.random.default_rng(4), 20, 20)
    config = preset_for_model(2).adaptation_config(num_steps=2)
    result = MetaTester(small_model.trainable_variables, config).adapt(lr, None)
    assert result.sr.shape == (40, 40, 3)
    assert np.all(np.diff(result.son_losses) < 0)


def test_default_output_shape_is_ceil_of_scale_times_input(small_model, blur):
    config = preset_for_model(3).adaptation_config(num_steps=1)
    result = MetaTester(small_model.trainable_variables, config).adapt(
        _smooth_image(np.random.default_rng(5), 18, 17), blur)
    assert result.sr.shape == (72, 68, 3)


def test_adapt_at_steps_equals_separate_runs(small_model, blur):
    # One run observed after 0, 1 and 4 steps gives exactly what three separate runs give.
    lr = _smooth_image(np.random.default_rng(6), 22, 18)
    config = preset_for_model(0).adaptation_config()
    tester = MetaTester(small_model.trainable_variables, config)
    multi = tester.adapt_at_steps(lr, blur, [4, 0, 1], output_shape=(44, 36))
    assert sorted(multi.srs) == [0, 1, 4]
    for n in (0, 1, 4):
        tester.config = dataclasses.replace(config, num_steps=n)
        single = tester.adapt(lr, blur, output_shape=(44, 36))
        np.testing.assert_array_equal(multi.srs[n], single.sr)
        np.testing.assert_array_equal(multi.son_losses[:n], single.son_losses)
    assert multi.son_losses.shape == (4,)
    assert not np.array_equal(multi.srs[0], multi.srs[4])


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_reduced_precision_stays_close_to_float32(small_model, blur, precision):
    lr = _smooth_image(np.random.default_rng(6), 24, 24)
    base = preset_for_model(0).adaptation_config(num_steps=3)
    reference = MetaTester(small_model.trainable_variables, base).adapt(lr, blur)
    reduced = MetaTester(small_model.trainable_variables,
                         dataclasses.replace(base, precision=precision)).adapt(lr, blur)
    # bfloat16 keeps 8 significant bits, float16 11: the residual network's output moves by far less
    # than one grey level (1/255 = 0.0039), and the son losses agree to a few per cent
    tolerance = 4e-3 if precision == "mixed_bfloat16" else 1e-3
    assert np.max(np.abs(reduced.sr - reference.sr)) < tolerance
    np.testing.assert_allclose(reduced.son_losses, reference.son_losses, rtol=3e-2)
    assert not np.array_equal(reduced.sr, reference.sr)  # it really computed in another precision


# The reference's test-time learning rates per model number (JWSoh/MZSR test.py, the if/elif ladder over
# self.iter), written out by hand for ten steps.
REFERENCE_TEST_RATES = {
    0: [2e-2, 1e-2, 1e-2, 1e-2, 5e-3, 5e-3, 5e-3, 5e-3, 5e-3, 5e-3],   # Directx2
    1: [1e-2, 1e-2, 1e-2, 5e-3, 5e-3, 5e-3, 5e-3, 5e-3, 5e-3, 5e-3],   # Multi-scale
    2: [1e-2, 1e-2, 1e-2, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3],   # Bicubicx2
    3: [1e-2, 5e-3, 5e-3, 5e-3, 5e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3],   # Directx4
}


@pytest.mark.parametrize("model_index", sorted(REFERENCE_TEST_RATES))
def test_each_models_test_time_learning_rates_are_the_references(model_index):
    config = preset_for_model(model_index).adaptation_config(num_steps=10)
    assert list(config.inner_lr.rates(10)) == REFERENCE_TEST_RATES[model_index]
    assert config.scale == (4.0 if model_index == 3 else 2.0)
