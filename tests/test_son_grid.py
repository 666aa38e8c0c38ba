"""Tests of the meta-test's ``son_grid`` option: the son of the input cropped to a multiple of the scale ("exact",
the default; beyond the reference, mzsr_tf.meta_test.father_shape) or of the whole input ("reference")."""
import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import adaptation, degradation
from mzsr_tf.config import ConfigError, preset_for_model
from mzsr_tf.imresize import imresize
from mzsr_tf.meta_test import MetaTester, father_shape
from mzsr_tf.model import forward
from synthetic import cosine_image
from test_adaptation import blur, small_model  # noqa: F401  (the meta-test tests' fixtures: a width-16 net, a blur)


@pytest.mark.parametrize("shape, scale, expected", [
    ((70, 70), 4.0, (68, 68)),      # Set5 head at x4
    ((57, 86), 4.0, (56, 84)),      # Set5 woman at x4
    ((72, 64), 4.0, (72, 64)),      # multiples stay whole
    ((71, 72), 2.5, (70, 70)),      # 70 / 2.5 = 28; 72 / 2.5 = 28.8 -> 70
    ((67, 45), 2.2, (66, 44)),      # 66 / 2.2 = 30, 44 / 2.2 = 20 (floating-point quotients)
    ((35, 36), 2.0, (34, 36)),
])
def test_father_shape_by_hand(shape, scale, expected):
    assert father_shape(shape, scale, "exact") == expected
    assert father_shape(shape, scale, "reference") == shape


@pytest.mark.parametrize("side, scale", [(70, 4), (57, 4), (86, 4), (35, 2), (41, 3)])
def test_the_reference_grid_is_stretched_and_the_cropped_one_exact(side, scale):
    """The reference's direct subsampling keeps round(linspace(0, H - s, ceil(H / s))) (its imresize.py)."""
    def grid(h):
        return np.round(np.linspace(0, h - scale, math.ceil(h / scale))).astype(int)
    assert set(np.diff(grid(side))) != {scale}                                   # stretched: some gaps shorter
    assert set(np.diff(grid(father_shape((side, side), scale, "exact")[0]))) == {scale}


def test_bicubic_subsampling_keeps_the_whole_input():
    """MATLAB's imresize maps output pixel x to input coordinate x * s + (s - 1) / 2 whatever the size, so its
    grid is exact on odd sides too: a linear ramp of odd width comes out as that map (away from the borders,
    where the kernel is cut), and father_shape keeps the whole input under either son grid."""
    ramp = np.tile(np.arange(41, dtype=np.float64)[None, :, None], (9, 1, 1))
    down = imresize(ramp, scale=0.5, kernel="cubic")
    assert down.shape[1] == 21
    np.testing.assert_allclose(down[4, 3:-3, 0], 2.0 * np.arange(3, 18) + 0.5, atol=1e-9)
    assert father_shape((41, 9), 2.0, "exact", "bicubic") == (41, 9)
    assert father_shape((41, 9), 2.0, "exact", "direct") == (40, 8)


def test_exact_son_is_the_son_of_the_cropped_input_written_out(small_model, blur):
    """The whole meta-test with son_grid 'exact' against the algorithm written out in numpy: son of the
    top-left 40x36 of a 42x39 input at x4, SGD on (son upscaled -> that crop), output of the whole input."""
    lr = cosine_image(np.random.default_rng(7), 42, 39).astype(np.float32)
    config = dataclasses.replace(preset_for_model(3).adaptation_config(num_steps=3), son_grid="exact")
    result = MetaTester(small_model.trainable_variables, config).adapt(lr, blur)

    father = lr[:40, :36].astype(np.float64)
    son = np.clip(degradation.degrade(father, blur, 4.0), 0, 1)
    assert son.shape == (10, 9, 3)
    son_ilr = imresize(son, scale=4.0, output_shape=father.shape, kernel="cubic")
    params, losses = adaptation.adapt_steps(
        small_model.trainable_variables, tf.constant(son_ilr[None], tf.float32),
        tf.constant(father[None], tf.float32), config.inner_lr.rates(3))
    np.testing.assert_allclose(result.son_losses, [l.numpy() for l in losses], rtol=2e-4)
    lr_ilr = imresize(lr.astype(np.float64), scale=4.0, output_shape=(168, 156), kernel="cubic")
    expected = np.clip(forward(params, tf.constant(lr_ilr[None], tf.float32))[0].numpy(), 0, 1)
    np.testing.assert_allclose(result.sr, expected, atol=2e-4)

    reference = MetaTester(small_model.trainable_variables, dataclasses.replace(config, son_grid="reference"))
    assert not np.allclose(reference.adapt(lr, blur).son_losses, result.son_losses, rtol=1e-3)


def test_both_grids_agree_bit_for_bit_on_multiples_of_the_scale(small_model, blur):
    lr = cosine_image(np.random.default_rng(8), 40, 36).astype(np.float32)
    config = preset_for_model(3).adaptation_config(num_steps=2)
    ref = MetaTester(small_model.trainable_variables, dataclasses.replace(config, son_grid="reference")).adapt(lr, blur)
    exact = MetaTester(small_model.trainable_variables, dataclasses.replace(config, son_grid="exact")).adapt(lr, blur)
    np.testing.assert_array_equal(ref.sr, exact.sr)
    np.testing.assert_array_equal(ref.son_losses, exact.son_losses)


def test_son_grid_is_checked_and_reaches_the_cli():
    with pytest.raises(ConfigError, match="son_grid"):
        dataclasses.replace(preset_for_model(0).adaptation_config(), son_grid="stretched")
    from mzsr_tf import cli
    args = cli.main_parser().parse_args(["--son-grid", "reference", "--model", "1", "--scale", "4"])
    config = cli.adaptation_config_from_flags(args, preset_for_model(1))
    assert (config.son_grid, config.scale) == ("reference", 4.0)
    assert cli.adaptation_config_from_flags(cli.main_parser().parse_args([]), preset_for_model(1)).son_grid == \
        "exact"
    assert preset_for_model(0).adaptation_config().son_grid == "exact"   # the default, also without the CLI
