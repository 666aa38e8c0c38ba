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
    assert set(testsets.PAPER_RESULTS) == {(kernel, set_name) for kernel in testsets.PAPER_KERNELS
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
