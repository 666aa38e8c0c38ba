"""Tests for mzsr_tf.testsets: the paper's kernels, the authors' g20 inputs regenerated, layout, errors."""
import json

import imageio.v3 as iio
import numpy as np
import pytest

from mzsr_tf import testsets
from mzsr_tf.imresize import imresize
from mzsr_tf.kernels import load_kernel
from mzsr_tf.metrics import to_uint8
from mzsr_tf.testsets import TestSetError


def _covariance(kernel):
    """Second moments of a kernel about its centre pixel, in (x = column, y = row) coordinates."""
    size = kernel.shape[0]
    y, x = np.mgrid[0:size, 0:size] - (size / 2 - 0.5)
    return np.array([[(kernel * x * x).sum(), (kernel * x * y).sum()],
                     [(kernel * x * y).sum(), (kernel * y * y).sum()]])


@pytest.mark.parametrize("name, variance", [("g20", 2.0), ("b13", 1.3), ("g20x4", 2.0)])
def test_isotropic_kernels_have_the_paper_width_as_variance(name, variance):
    # A sampled Gaussian of variance >= 1.3 keeps its variance to ~1e-11 (Poisson summation) and
    # loses nothing measurable to the 21 x 21 truncation.
    kernel = testsets.get_kernel(name).kernel()
    assert kernel.shape == (21, 21)
    np.testing.assert_allclose(_covariance(kernel), np.diag([variance, variance]), atol=1e-9)


def test_anisotropic_kernel_is_eq8_with_widths_4_and_1_at_minus_half_radian():
    theta = -0.5
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    expected = rotation @ np.diag([4.0, 1.0]) @ rotation.T
    # the 21 x 21 truncation cuts the tail beyond 5 standard deviations of the wide axis: < 1e-6
    np.testing.assert_allclose(_covariance(testsets.get_kernel("gani").kernel()), expected, atol=1e-6)


def test_narrow_kernel_is_the_normalised_sampled_gaussian():
    # g^d_0.2: variance 0.2, so the sampled kernel is nearly a delta; check values by hand
    kernel = testsets.get_kernel("g02").kernel()
    weights = np.exp(-0.5 * np.arange(-10, 11) ** 2 / 0.2)
    np.testing.assert_allclose(kernel, np.outer(weights, weights) / weights.sum() ** 2, rtol=1e-12)
    # centre: (1 / (1 + 2 e^-2.5 + 2 e^-10 + ...))^2 = (1 / 1.164261)^2, most of the mass in one pixel
    assert kernel[10, 10] == pytest.approx(0.737733, abs=1e-6)


def test_kernel_table_matches_the_paper():
    table = {name: (k.paper_name, k.scale, k.ds_method, k.preset) for name, k in testsets.PAPER_KERNELS.items()}
    assert table == {"g02": ("g^d_0.2", 2.0, "direct", "direct_x2"),
                     "g20": ("g^d_2.0", 2.0, "direct", "direct_x2"),
                     "gani": ("g^d_ani", 2.0, "direct", "direct_x2"),
                     "b13": ("g^b_1.3", 2.0, "bicubic", "bicubic_x2"),
                     "g20x4": ("g^d_2.0 (x4)", 4.0, "direct", "direct_x4")}


def test_paper_results_cover_every_kernel_and_set_with_the_table_columns():
    assert set(testsets.PAPER_RESULTS) == {(kernel, set_name) for kernel in [*testsets.PAPER_KERNELS, "bic"]
                                           for set_name in ("Set5", "BSD100", "Urban100")}
    assert all(set(columns) == {"bicubic", "zssr", "mzsr_1", "mzsr_10"}
               for columns in testsets.PAPER_RESULTS.values())
    assert testsets.PAPER_RESULTS[("g20", "Set5")]["mzsr_10"] == (36.05, 0.9439)  # the paper's Table 2


def test_regenerates_the_authors_g20_set5_bit_exactly(reference_dir, tmp_path):
    manifest = testsets.make_testset(str(reference_dir / "GT" / "Set5"), str(tmp_path), ["g20"], log=lambda s: None)
    ours = sorted((tmp_path / "Input" / "g20" / "Set5").glob("*.png"))
    theirs = sorted((reference_dir / "Input" / "g20" / "Set5").glob("*.png"))
    assert len(ours) == len(theirs) == 5
    for mine, reference in zip(ours, theirs):
        np.testing.assert_array_equal(iio.imread(mine), iio.imread(reference))
    np.testing.assert_allclose(load_kernel(tmp_path / "Input" / "g20" / "kernel.mat"),
                               load_kernel(reference_dir / "Input" / "g20" / "kernel.mat"), rtol=0, atol=1e-15)
    for mine, reference in zip(sorted((tmp_path / "GT" / "Set5").glob("*.png")),
                               sorted((reference_dir / "GT" / "Set5").glob("*.png"))):
        np.testing.assert_array_equal(iio.imread(mine), iio.imread(reference))
    assert manifest["sets"]["Set5"]["images"][0] == "baby_GT.png"


@pytest.fixture()
def hr_folder(tmp_path):
    """Two sets: 'A' with an RGB image of odd size and a grayscale one, 'B' with one RGB image."""
    rng = np.random.default_rng(0)
    (tmp_path / "hr" / "A").mkdir(parents=True)
    (tmp_path / "hr" / "B").mkdir(parents=True)
    iio.imwrite(tmp_path / "hr" / "A" / "colour.png", rng.integers(0, 256, (90, 101, 3), dtype=np.uint8))
    iio.imwrite(tmp_path / "hr" / "A" / "gray.png", rng.integers(0, 256, (64, 66), dtype=np.uint8))
    iio.imwrite(tmp_path / "hr" / "B" / "other.bmp", rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    return tmp_path / "hr"


def test_layout_modcrop_grayscale_and_manifest(hr_folder, tmp_path):
    out = tmp_path / "ts"
    testsets.make_testset(str(hr_folder), str(out), ["b13", "g20x4"], log=lambda s: None)
    hr = iio.imread(hr_folder / "A" / "colour.png")
    gt2 = iio.imread(out / "GT" / "A" / "colour.png")
    gt4 = iio.imread(out / "GT_x4" / "A" / "colour.png")
    np.testing.assert_array_equal(gt2, hr[:90, :100])
    np.testing.assert_array_equal(gt4, hr[:88, :100])
    assert iio.imread(out / "Input" / "g20x4" / "A" / "colour.png").shape == (22, 25, 3)
    # b13: blur by the 1.3 kernel then bicubic subsampling, the reference's imresize recipe
    expected = to_uint8(np.clip(imresize(hr[:90, :100] / 255.0, scale=0.5, kernel=testsets.get_kernel("b13").kernel(),
                                         ds_method="bicubic"), 0, 1))
    np.testing.assert_array_equal(iio.imread(out / "Input" / "b13" / "A" / "colour.png"), expected)
    gray_lr = iio.imread(out / "Input" / "b13" / "A" / "gray.png")
    assert gray_lr.shape == (32, 33, 3)
    np.testing.assert_array_equal(gray_lr[..., 0], gray_lr[..., 2])
    assert iio.imread(out / "GT" / "A" / "gray.png").shape == (64, 66, 3)
    assert (out / "Input" / "b13" / "B" / "other.png").exists()
    manifest = json.loads((out / "testset.json").read_text())
    assert manifest["sets"]["A"]["expanded_from_grayscale"] == ["gray.png"]
    assert manifest["kernels"]["g20x4"]["gt"] == "GT_x4"
    assert manifest["kernels"]["b13"]["l1"] == 1.3
    # adding a kernel later keeps the manifest's earlier entries
    testsets.make_testset(str(hr_folder / "B"), str(out), ["g20"], log=lambda s: None)
    manifest = json.loads((out / "testset.json").read_text())
    assert sorted(manifest["kernels"]) == ["b13", "g20", "g20x4"]


def test_unknown_kernel_lists_the_known_ones():
    with pytest.raises(TestSetError, match=r"unknown kernel 'g99'; known kernels: g02 \(g\^d_0.2\), g20 .*g20x4"):
        testsets.get_kernel("g99")


def test_bad_hr_folders(tmp_path, hr_folder):
    with pytest.raises(TestSetError, match=r"HR folder .*missing does not exist"):
        testsets.find_hr_sets(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TestSetError, match=r"HR folder .*empty holds no images"):
        testsets.find_hr_sets(str(tmp_path / "empty"))
    with pytest.raises(TestSetError, match=r"set\(s\) Set5 not found in .*hr; available: A, B"):
        testsets.find_hr_sets(str(hr_folder), ["Set5"])
    (hr_folder / "A" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(TestSetError, match=r"cannot read HR image .*broken.png"):
        testsets.make_testset(str(hr_folder), str(tmp_path / "out"), ["g20"], log=lambda s: None)
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_script_exit_codes(tmp_path, hr_folder, capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "make_testsets.py"
    spec = importlib.util.spec_from_file_location("make_testsets", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--hr", str(hr_folder), "--out", str(tmp_path / "o"), "--kernels", "g99"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: unknown kernel 'g99'") and "\n" not in error
    assert script.main(["--hr", str(hr_folder / "B"), "--out", str(tmp_path / "o"), "--kernels", "g20,b13"]) == 0
    assert (tmp_path / "o" / "Input" / "b13" / "B" / "other.png").exists()


# --------------------------------------------------------------------------- rk: a random kernel per image

def _div2krk_kernel_by_hand(set_name, stem):
    """The rk recipe written out independently: eigenvalues U(0.35, 5), angle U[0, pi), an 11x11 Gaussian
    exp(-x^T Sigma^-1 x / 2) centred on pixel 5, times 1 + U(-0.25, 0.25), normalised, padded to 21x21."""
    import zlib
    rng = np.random.default_rng([0, zlib.crc32(f"{set_name}/{stem}".encode())])
    l1, l2 = rng.uniform(0.35, 5.0, size=2)
    theta = rng.uniform(0.0, np.pi)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inverse = np.linalg.inv(rotation @ np.diag([l1, l2]) @ rotation.T)
    y, x = np.mgrid[0:11, 0:11] - 5.0
    points = np.stack([x, y], -1)
    gaussian = np.exp(-0.5 * np.einsum("...i,ij,...j->...", points, inverse, points))
    gaussian /= gaussian.sum()
    noisy = gaussian * (1.0 + rng.uniform(-0.25, 0.25, size=(11, 11)))
    kernel = np.zeros((21, 21))
    kernel[5:16, 5:16] = noisy / noisy.sum()
    return kernel


def test_rk_kernels_follow_the_recipe_and_are_saved_beside_their_inputs(hr_folder, tmp_path):
    from mzsr_tf.degradation import degrade
    out = tmp_path / "ts"
    manifest = testsets.make_testset(str(hr_folder), str(out), ["rk"], log=lambda s: None)
    assert not (out / "Input" / "rk" / "kernel.mat").exists()
    hr = iio.imread(hr_folder / "A" / "colour.png")
    kernel = load_kernel(out / "Input" / "rk" / "A" / "colour.mat")
    np.testing.assert_allclose(kernel, _div2krk_kernel_by_hand("A", "colour"), rtol=0, atol=1e-12)
    expected = to_uint8(degrade(hr[:90, :100] / 255.0, kernel, 2.0, ds_method="direct"))
    np.testing.assert_array_equal(iio.imread(out / "Input" / "rk" / "A" / "colour.png"), expected)
    # each image its own kernel, the same on every run, whatever else is made
    other = load_kernel(out / "Input" / "rk" / "B" / "other.mat")
    assert np.abs(other - kernel).max() > 1e-3
    testsets.make_testset(str(hr_folder / "B"), str(tmp_path / "alone"), ["rk"], log=lambda s: None)
    np.testing.assert_array_equal(load_kernel(tmp_path / "alone" / "Input" / "rk" / "B" / "other.mat"), other)
    parameters = manifest["kernels"]["rk"]["images"]["A/colour"]
    assert 0.35 <= parameters["l1"] <= 5.0 and 0.35 <= parameters["l2"] <= 5.0 and 0 <= parameters["theta"] < np.pi


def test_evaluate_finds_the_per_image_kernels_of_rk(hr_folder, tmp_path):
    from mzsr_tf.evaluate import find_cells
    out = tmp_path / "ts"
    testsets.make_testset(str(hr_folder), str(out), ["rk", "g20"], log=lambda s: None)
    cells = find_cells(str(out))
    assert [(c.paper_kernel.name, c.set_name) for c in cells] == [("g20", "A"), ("g20", "B"), ("rk", "A"), ("rk", "B")]
    rk_a = cells[2]
    assert rk_a.kernel_source.kernel_for(str(out / "Input" / "rk" / "A" / "gray.png")).origin == \
        str(out / "Input" / "rk" / "A" / "gray.mat")


# --------------------------------------------------------------------------- bic: the paper's "bicubic" scenario

def _matlab_imresize_half(image):
    """MATLAB's imresize(image, 0.5) (bicubic, antialiasing) written out from its documented algorithm, in
    float64: per output index i (1-based) the centre u = i / 0.5 + 0.5 (1 - 1 / 0.5) = 2 i - 0.5, the cubic
    kernel (a = -0.5) stretched by 2 and scaled by 0.5 over 10 taps from floor(u - 4), indices mirrored at
    the borders, weights normalised; rows first, then columns (MATLAB's order for a downscale, the
    dimension with the larger scale change first: equal here, so dimension 1 first)."""
    def cubic(x):
        x = np.abs(x)
        return ((1.5 * x ** 3 - 2.5 * x ** 2 + 1) * (x <= 1)
                + (-0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2) * ((x > 1) & (x <= 2)))

    def along(axis_length):
        out = np.arange(1, (axis_length + 1) // 2 + 1)
        u = 2.0 * out - 0.5
        left = np.floor(u - 4.0)
        taps = left[:, None] + np.arange(10)[None, :]
        weights = 0.5 * cubic(0.5 * (u[:, None] - taps))
        weights /= weights.sum(1, keepdims=True)
        index = taps.astype(int) - 1                       # 0-based, then mirrored (MATLAB's 'symmetric')
        period = np.concatenate([np.arange(axis_length), np.arange(axis_length)[::-1]])
        return weights, period[np.mod(index, 2 * axis_length)]

    rows_w, rows_i = along(image.shape[0])
    image = np.einsum("ok,okc...->oc...", rows_w, image[rows_i]) if image.ndim == 2 else \
        np.einsum("ok,okwc->owc", rows_w, image[rows_i])
    cols_w, cols_i = along(image.shape[1])
    return np.einsum("ok,hokc->hoc", cols_w, image[:, cols_i])


def test_bic_inputs_are_matlab_imresize_half_bit_for_bit(hr_folder, tmp_path):
    out = tmp_path / "ts"
    manifest = testsets.make_testset(str(hr_folder), str(out), ["bic"], log=lambda s: None)
    assert not (out / "Input" / "bic" / "kernel.mat").exists()  # no kernel: meta-tested as bicubic degradation
    assert manifest["kernels"]["bic"]["preset"] == "bicubic_x2"
    for set_name, name, stem in (("A", "colour.png", "colour"), ("B", "other.bmp", "other")):
        hr = iio.imread(hr_folder / set_name / name).astype(np.float64) / 255.0
        hr = hr[:hr.shape[0] // 2 * 2, :hr.shape[1] // 2 * 2]
        expected = np.round(np.clip(_matlab_imresize_half(hr) * 255.0, 0, 255)).astype(np.uint8)
        np.testing.assert_array_equal(iio.imread(out / "Input" / "bic" / set_name / f"{stem}.png"), expected)


def test_evaluate_meta_tests_bic_as_bicubic_degradation(hr_folder, tmp_path):
    from mzsr_tf.evaluate import find_cells
    testsets.make_testset(str(hr_folder), str(tmp_path / "ts"), ["bic"], log=lambda s: None)
    cells = find_cells(str(tmp_path / "ts"), ["bic"])
    assert [c.paper_kernel.preset for c in cells] == ["bicubic_x2", "bicubic_x2"]
    assert cells[0].kernel_source.kernel_for("any.png").kernel is None
    assert testsets.PAPER_RESULTS[("bic", "Set5")]["mzsr_10"] == (37.25, 0.9567)  # the paper's Table 1
