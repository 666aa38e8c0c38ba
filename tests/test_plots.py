"""Tests for mzsr_tf.plots: crop placement by hand, kernel names, figures written and not blank."""
import imageio.v3 as iio
import numpy as np
import pytest

from mzsr_tf import plots


def test_choose_crop_finds_the_highest_scoring_window():
    score = np.zeros((80, 90))
    score[30:40, 40:50] = 1.0  # the only non-zero score: a 10 x 10 block
    # 16 x 16 windows holding the whole block start at rows 24..30 and columns 34..40; the first in
    # row-major order wins
    assert plots.choose_crop(score, 16) == (24, 34)
    # corners on multiples of 4: rows 24 or 28, columns 36 or 40
    assert plots.choose_crop(score, 16, align=4) == (24, 36)
    # a window larger than the image shrinks to it
    assert plots.choose_crop(score, 200) == (0, 0)


def test_detail_map_by_hand():
    image = np.zeros((3, 4, 3), np.uint8)
    image[1, 2] = 255  # Y = round(219 + 16) = 235 there, 16 elsewhere: a step of 219
    expected = np.zeros((3, 4))
    expected[1, 1] = expected[0, 2] = 219  # differences into the bright pixel
    expected[1, 2] = 219 + 219  # out of it, to the right and downwards
    np.testing.assert_array_equal(plots.detail_map(image), expected)


@pytest.mark.parametrize("name, text", [("g^d_2.0", "$g^{d}_{2.0}$"), ("g^b_1.3", "$g^{b}_{1.3}$"),
                                        ("g^d_2.0 (x4)", "$g^{d}_{2.0}$ (x4)"), ("custom", "custom")])
def test_math_kernel_name(name, text):
    assert plots.math_kernel_name(name) == text


def _not_blank(path):
    image = iio.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 10
    return image


def test_psnr_vs_steps_figure(tmp_path):
    def cell(kernel, paper_kernel, set_name, offset, paper):
        columns = {f"mzsr_{n}": {"psnr": 30 + offset + np.log1p(n), "ssim": 0.9} for n in (0, 1, 10)}
        columns["bicubic"] = {"psnr": 29 + offset, "ssim": 0.8}
        columns["zssr"] = {"psnr": 33 + offset, "ssim": 0.9, "steps": 850.0}
        return {"kernel": kernel, "paper_kernel": paper_kernel, "set": set_name, "columns": columns,
                "paper": paper}

    cells = [cell("g20", "g^d_2.0", "Set5", 0, {"mzsr_1": {"psnr": 35.2, "ssim": 0.94}}),
             cell("g20", "g^d_2.0", "BSD100", -3, {}),
             cell("g20x4", "g^d_2.0 (x4)", "Set5", -5, {})]
    path = plots.plot_psnr_vs_steps(cells, [0, 1, 10], str(tmp_path / "sub" / "steps.png"))
    assert path == str(tmp_path / "sub" / "steps.png")
    _not_blank(path)


def test_crop_figure(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (64, 60, 3), dtype=np.uint8)
    items = [{"set": "Set5", "image": f"im{i}", "lr": rng.random((32, 30, 3)).astype(np.float32), "gt": gt,
              "outputs": {"bicubic": gt // 2, "mzsr_1": gt, "mzsr_10": gt}, "scores": {"mzsr_1": 30.0}}
             for i in range(2)]
    path = plots.plot_crops(items, ["bicubic", "mzsr_1", "mzsr_10"], str(tmp_path / "crops.png"), crop=32,
                            title="g^d_2.0")
    image = _not_blank(path)
    assert image.shape[1] > image.shape[0]  # five panels side by side, two rows
