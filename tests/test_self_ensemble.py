"""Test-time self-ensemble (mzsr_tf.self_ensemble): the eight transforms, their inverses, the kernels each
member is adapted with, and the averaging against hand computations."""
import dataclasses

import numpy as np
import pytest

from mzsr_tf import self_ensemble
from mzsr_tf.config import AdaptationConfig
from mzsr_tf.meta_test import MultiStepResult


def _dihedral_by_hand(a):
    """The eight flips/rotations of a 2-D array, written with transposes and reversals only: the four
    rotations (counter-clockwise), then the left-right mirror image, the transpose, the upside-down image and
    the anti-transpose."""
    return [a, a.T[::-1], a[::-1, ::-1], a.T[:, ::-1],
            a[:, ::-1], a.T, a[::-1], a[::-1, ::-1].T]


def test_the_eight_transforms_and_their_inverses():
    a = np.arange(12.0).reshape(3, 4)
    by_hand = _dihedral_by_hand(a)
    for index in range(8):
        np.testing.assert_array_equal(self_ensemble.transform(a, index), by_hand[index])
        np.testing.assert_array_equal(self_ensemble.inverse(self_ensemble.transform(a, index), index), a)
        assert self_ensemble.transformed_shape(a.shape, index) == by_hand[index].shape
    # all eight differ: it is the whole group
    assert len({self_ensemble.transform(a, i).tobytes() + bytes(self_ensemble.transform(a, i).shape) for i in range(8)}) == 8
    with pytest.raises(ValueError, match="0..7"):
        self_ensemble.transform(a, 8)


class _RampTester:
    """A stand-in for MetaTester: after n steps its output is its input (upscaled by 1) plus n times a ramp
    along the columns of *its own* frame, so it is not equivariant; it records the kernels it was given.
    Bicubic subsampling: no member's output is shifted (see the alignment test below for direct)."""

    config = AdaptationConfig(ds_method="bicubic")

    def __init__(self):
        self.kernels, self.seeds = [], []

    def plain_adapt_at_steps(self, lr, kernel, step_counts, output_shape, seed):
        self.kernels.append(kernel)
        self.seeds.append(seed)
        assert lr.shape[:2] == tuple(output_shape)
        ramp = np.broadcast_to(np.arange(lr.shape[1], dtype=np.float64)[None, :, None], lr.shape)
        return MultiStepResult(srs={n: lr + n * ramp for n in step_counts}, son_losses=np.array([1.0]), seconds=0.0)


def test_the_average_is_the_hand_computed_one():
    """On an N x N image the column ramp seen by the eight members comes back as the ramps j, N-1-j, i and
    N-1-i, twice each: their mean is (N - 1) / 2 everywhere, so after n steps the ensemble is the input plus
    n (N - 1) / 2."""
    n_side = 6
    lr = np.random.default_rng(0).random((n_side, n_side, 3))
    kernel = np.arange(9.0).reshape(3, 3)
    tester = _RampTester()
    result = self_ensemble.adapt_at_steps(tester, lr, kernel, (0, 2), (n_side, n_side), seed=(3, 1))
    np.testing.assert_allclose(result.srs[0], lr, atol=1e-6)
    np.testing.assert_allclose(result.srs[2], lr + 2 * (n_side - 1) / 2, atol=1e-5)
    # each member was adapted with its own turned kernel, and its own noise seed
    for given, by_hand in zip(tester.kernels, _dihedral_by_hand(kernel)):
        np.testing.assert_array_equal(given, by_hand)
    assert tester.seeds == [(3, 8 + t) for t in range(8)]


def test_a_bicubic_son_has_no_kernel_to_turn_and_non_square_outputs_are_turned_back():
    lr = np.random.default_rng(1).random((4, 6, 3))
    tester = _RampTester()
    result = self_ensemble.adapt_at_steps(tester, lr, None, (1,), (4, 6))
    assert tester.kernels == [None] * 8 and result.srs[1].shape == (4, 6, 3)
    # ramps j and W-1-j (twice each, mean (W-1)/2 = 2.5) and i and H-1-i (mean (H-1)/2 = 1.5)
    np.testing.assert_allclose(result.srs[1], lr + (2.5 + 1.5) / 2, atol=1e-5)


def test_meta_tester_with_self_ensemble_runs_every_member(monkeypatch):
    """MetaTester.adapt with config.self_ensemble goes through the ensemble (eight plain runs)."""
    import tensorflow as tf
    from mzsr_tf.config import get_preset
    from mzsr_tf.meta_test import MetaTester
    from mzsr_tf.model import MZSRNet
    model = MZSRNet(seed=0)
    model(tf.zeros([1, 8, 8, 3]))
    config = dataclasses.replace(get_preset("bicubic_x2").adaptation_config(num_steps=1), self_ensemble=True)
    tester = MetaTester(model.trainable_variables, config)
    calls = []
    original = tester.plain_adapt_at_steps
    monkeypatch.setattr(tester, "plain_adapt_at_steps", lambda *a, **k: calls.append(a[0].shape) or original(*a, **k))
    lr = np.random.default_rng(2).random((10, 14, 3)).astype(np.float32)
    result = tester.adapt(lr, None)
    assert len(calls) == 8 and sorted(set(calls)) == [(10, 14, 3), (14, 10, 3)]
    assert result.sr.shape == (20, 28, 3) and 0.0 <= result.sr.min() and result.sr.max() <= 1.0


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory):
    import imageio.v3 as iio
    import tensorflow as tf
    from mzsr_tf import checkpoints
    from mzsr_tf.model import MZSRNet
    root = tmp_path_factory.mktemp("se")
    (root / "LR").mkdir()
    rng = np.random.default_rng(4)
    iio.imwrite(root / "LR" / "a.png", (rng.random((26, 30, 3)) * 255).astype(np.uint8))
    model = MZSRNet(seed=2)
    model(tf.zeros([1, 8, 8, 3]))
    checkpoints.export_weights(model, str(root / "ckpt" / "weights"))
    return root


@pytest.mark.parametrize("model", ["0", "1", "2", "3"])
def test_self_ensemble_flag_works_with_every_preset(small_inputs, tmp_path, capsys, model):
    import importlib.util
    import json
    import pathlib
    import imageio.v3 as iio
    script = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "main.py"
    spec = importlib.util.spec_from_file_location("main_for_se", script)
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    code = main.main(["--model", model, "--self-ensemble", "--num", "1", "--inputpath", str(small_inputs / "LR"),
                      "--gtpath", "", "--kernelpath", "", "--savepath", str(tmp_path / "out"),
                      "--checkpoint", str(small_inputs / "ckpt" / "weights")])
    assert code == 0, capsys.readouterr().err
    scale = 4 if model == "3" else 2
    assert iio.imread(tmp_path / "out" / "01" / "a.png").shape == (26 * scale, 30 * scale, 3)
    results = json.loads((tmp_path / "out" / "01" / "results.json").read_text())
    assert results["images"][0]["seconds"] > 0 and results["self_ensemble"] is True


@pytest.mark.parametrize("scale, ds_method", [(2, "direct"), (4, "direct"), (2, "bicubic")])
def test_members_line_up_under_the_subsampling_convention(scale, ds_method):
    """An oracle member that returns the HR image its own frame's degradation model implies (found by brute
    force among shifts of the turned HR, not by ``sampling_shift``) must give back the HR image exactly:
    the ensemble's shifts undo the off-by-(s-1) of direct subsampling in frames where an axis runs backwards."""
    from mzsr_tf import degradation, kernels
    rng = np.random.default_rng(7)
    hr = rng.random((12 * scale, 14 * scale, 3))
    kernel = kernels.anisotropic_gaussian(9, 0.5, 2.0, 0.7)
    lr = degradation.degrade(hr, kernel, scale, ds_method)
    inner = slice(2 * scale, -2 * scale)

    class Oracle:
        config = AdaptationConfig(scale=float(scale), ds_method=ds_method)

        def plain_adapt_at_steps(self, lr_t, kernel_t, step_counts, output_shape, seed):
            index = next(t for t in range(8) if self_ensemble.transform(lr, t).shape == lr_t.shape
                         and np.array_equal(self_ensemble.transform(lr, t), lr_t))
            hr_t = self_ensemble.transform(hr, index)
            best = None
            for rows in range(scale):
                for cols in range(scale):
                    moved = np.pad(hr_t, ((0, rows), (0, cols), (0, 0)), mode="edge")[rows:, cols:]
                    error = np.abs(degradation.degrade(moved, kernel_t, scale, ds_method) - lr_t)[2:-2, 2:-2].max()
                    if best is None or error < best[0]:
                        best = (error, moved)
            assert best[0] < 1e-12
            return MultiStepResult(srs={n: best[1] for n in step_counts}, son_losses=np.zeros(1), seconds=0.0)

    result = self_ensemble.adapt_at_steps(Oracle(), lr, kernel, (1,), hr.shape[:2])
    np.testing.assert_allclose(result.srs[1][inner, inner], hr[inner, inner], atol=1e-6)
