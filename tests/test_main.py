"""End-to-end tests of ``scripts/main.py`` test mode: outputs, the no-GT case, and every bad input."""
import importlib.util
import json
import os
import pathlib

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import checkpoints, degradation, kernels, metrics
from mzsr_tf.model import MZSRNet

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_main():
    spec = importlib.util.spec_from_file_location("mzsr_main", REPO_ROOT / "scripts" / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smooth_image(rng, height, width):
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = sum(np.cos(2 * np.pi * (rng.uniform(0.5, 5) * y[..., None] + rng.uniform(0.5, 5) * x[..., None])
                       + rng.uniform(0, 6, size=3)) for _ in range(3))
    return ((image - image.min()) / (image.max() - image.min())).astype(np.float64)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """LR inputs made from two GT images with a Gaussian kernel, the kernel file and a checkpoint."""
    root = tmp_path_factory.mktemp("metatest")
    rng = np.random.default_rng(0)
    kernel = kernels.isotropic_gaussian(9, 2.0)
    (root / "GT").mkdir()
    (root / "LR").mkdir()
    for name, shape in [("a", (36, 40)), ("b", (30, 28))]:
        gt = _smooth_image(rng, *shape)
        lr = degradation.degrade(gt, kernel, 2.0)
        iio.imwrite(root / "GT" / f"{name}_GT.png", metrics.to_uint8(gt))
        iio.imwrite(root / "LR" / f"{name}.png", metrics.to_uint8(lr))
    kernels.save_kernel(root / "kernel.mat", kernel)
    model = MZSRNet(seed=1)
    model(tf.zeros([1, 8, 8, 3]))
    checkpoints.export_weights(model, str(root / "ckpt" / "weights"))
    return root


def _run(workspace, capsys, *extra, gt=True, kernel=True):
    args = ["--inputpath", str(workspace / "LR"), "--savepath", str(workspace / "out"),
            "--checkpoint", str(workspace / "ckpt" / "weights")]
    args += ["--gtpath", str(workspace / "GT") if gt else ""]
    args += ["--kernelpath", str(workspace / "kernel.mat") if kernel else ""]
    code = _load_main().main(args + list(extra))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_end_to_end_writes_images_results_and_the_reference_summary_line(workspace, capsys):
    code, out, err = _run(workspace, capsys, "--num", "3")
    assert code == 0, err
    out_dir = workspace / "out" / "03"
    sr = iio.imread(out_dir / "a.png")
    assert sr.shape == (36, 40, 3) and sr.dtype == np.uint8
    results = json.loads((out_dir / "results.json").read_text())
    assert [r["name"] for r in results["images"]] == ["a", "b"]
    assert all(len(r["son_losses"]) == 3 for r in results["images"])
    first = results["images"][0]
    # the PSNR in results.json is that of the PNG written, against the GT
    gt = iio.imread(workspace / "GT" / "a_GT.png")
    assert first["final_psnr"] == pytest.approx(metrics.psnr_y(sr, gt, 2), abs=1e-9)
    last_line = [l for l in out.splitlines() if l.startswith("[*] Average PSNR")][0]
    assert last_line == "[*] Average PSNR ** Initial: %.4f, Final : %.4f" % (
        results["average_initial_psnr"], results["average_final_psnr"])


def test_without_gt_writes_sr_of_ceil_scale_shape_and_no_psnr(workspace, capsys):
    code, out, err = _run(workspace, capsys, "--num", "1", "--savepath", str(workspace / "nogt"), gt=False)
    assert code == 0, err
    sr = iio.imread(workspace / "nogt" / "01" / "b.png")
    assert sr.shape == (30, 28, 3)
    results = json.loads((workspace / "nogt" / "01" / "results.json").read_text())
    assert "final_psnr" not in results["images"][0]
    assert "Average PSNR" not in out


def test_without_kernel_says_bicubic_explicitly(workspace, capsys):
    code, out, err = _run(workspace, capsys, "--num", "1", "--savepath", str(workspace / "cubic"), kernel=False)
    assert code == 0, err
    assert "bicubic ('cubic') down-sampling" in out


def test_kernel_folder_gives_each_input_its_kernel_file(workspace, capsys, tmp_path):
    folder = tmp_path / "kernels"
    folder.mkdir()
    kernel = kernels.load_kernel(workspace / "kernel.mat")
    for name in ("a", "b"):
        kernels.save_kernel(folder / f"{name}.mat", kernel)
    code, out, err = _run(workspace, capsys, "--num", "1", "--savepath", str(tmp_path / "per_image"),
                          "--kernelpath", str(folder))
    assert code == 0, err
    per_image = json.loads((tmp_path / "per_image" / "01" / "results.json").read_text())
    assert [r["kernel"] for r in per_image["images"]] == [str(folder / "a.mat"), str(folder / "b.mat")]
    # the same kernel given as one file gives the same numbers
    code, _, err = _run(workspace, capsys, "--num", "1", "--savepath", str(tmp_path / "one_file"))
    assert code == 0, err
    one_file = json.loads((tmp_path / "one_file" / "01" / "results.json").read_text())
    assert [r["final_psnr"] for r in per_image["images"]] == [r["final_psnr"] for r in one_file["images"]]
    assert one_file["kernel"] == str(workspace / "kernel.mat")


def _bad_input(workspace, capsys, tmp_path, **paths):
    args = {"inputpath": workspace / "LR", "gtpath": workspace / "GT", "kernelpath": workspace / "kernel.mat",
            "checkpoint": workspace / "ckpt" / "weights"}
    args.update(paths)
    argv = ["--savepath", str(tmp_path / "out"), "--num", "1"]
    for key, value in args.items():
        argv += [f"--{key}", str(value)]
    code = _load_main().main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "01" / "results.json").exists()
    return err


def _folder_with(tmp_path, name, image):
    folder = tmp_path / name
    folder.mkdir()
    iio.imwrite(folder / "a.png", image)
    return folder


def test_missing_input_folder(workspace, capsys, tmp_path):
    err = _bad_input(workspace, capsys, tmp_path, inputpath=tmp_path / "nowhere")
    assert "input folder" in err and "nowhere" in err and "does not exist" in err


def test_empty_input_folder(workspace, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    err = _bad_input(workspace, capsys, tmp_path, inputpath=tmp_path / "empty")
    assert "holds no images" in err and "empty" in err


def test_gt_count_mismatch(workspace, capsys, tmp_path):
    gt = _folder_with(tmp_path, "gt1", np.zeros((36, 40, 3), np.uint8))
    err = _bad_input(workspace, capsys, tmp_path, gtpath=gt)
    assert "2 images in input folder" in err and "1 in GT folder" in err


def test_gt_size_mismatch(workspace, capsys, tmp_path):
    gt = tmp_path / "gtsize"
    gt.mkdir()
    iio.imwrite(gt / "a_GT.png", np.zeros((36, 40, 3), np.uint8))
    iio.imwrite(gt / "b_GT.png", np.zeros((50, 50, 3), np.uint8))
    err = _bad_input(workspace, capsys, tmp_path, gtpath=gt)
    assert "b_GT.png is 50x50" in err and "b.png is 15x14" in err


@pytest.mark.parametrize("image, words", [
    (np.zeros((12, 12), np.uint8), "grayscale image"),
    (np.zeros((12, 12, 4), np.uint8), "4 channels"),
    (np.zeros((12, 12), np.uint16), "uint16 image"),
])
def test_wrong_kind_of_image(workspace, capsys, tmp_path, image, words):
    folder = _folder_with(tmp_path, "odd", image)
    err = _bad_input(workspace, capsys, tmp_path, inputpath=folder, gtpath="")
    assert words in err and "a.png" in err


def test_unreadable_image(workspace, capsys, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    err = _bad_input(workspace, capsys, tmp_path, inputpath=folder, gtpath="")
    assert "cannot read image" in err and "a.png" in err


def test_kernel_larger_than_image(workspace, capsys, tmp_path):
    kernels.save_kernel(tmp_path / "big.mat", kernels.isotropic_gaussian(21, 2.0))
    folder = _folder_with(tmp_path, "tiny", np.full((10, 12, 3), 128, np.uint8))
    err = _bad_input(workspace, capsys, tmp_path, inputpath=folder, gtpath="", kernelpath=tmp_path / "big.mat")
    assert "big.mat is 21x21, larger than input" in err and "a.png (10x12)" in err


def test_unreadable_kernel_file(workspace, capsys, tmp_path):
    (tmp_path / "kernel.mat").write_bytes(b"garbage")
    err = _bad_input(workspace, capsys, tmp_path, kernelpath=tmp_path / "kernel.mat")
    assert "kernel.mat" in err


def test_missing_kernel_file(workspace, capsys, tmp_path):
    err = _bad_input(workspace, capsys, tmp_path, kernelpath=tmp_path / "absent.mat")
    assert "absent.mat" in err


def test_kernel_folder_without_an_inputs_kernel(workspace, capsys, tmp_path):
    folder = tmp_path / "kernels"
    folder.mkdir()
    kernels.save_kernel(folder / "a.mat", kernels.isotropic_gaussian(9, 2.0))
    err = _bad_input(workspace, capsys, tmp_path, kernelpath=folder)
    assert f"no kernel for image {workspace / 'LR' / 'b.png'} in kernel folder {folder}" in err


def test_checkpoint_that_does_not_load(workspace, capsys, tmp_path):
    err = _bad_input(workspace, capsys, tmp_path, checkpoint=tmp_path / "no_such_ckpt")
    assert "no_such_ckpt" in err


def test_num_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load_main().main(["--num", "0"])
    assert exit_info.value.code == 2
    assert "--num must be a positive integer" in capsys.readouterr().err


# --------------------------------------------------------------------------- inputs and outputs checked first

@pytest.fixture
def no_checkpoint_loading(monkeypatch):
    """Any checkpoint loading fails the test: the inputs must have been refused before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the inputs were checked")
    monkeypatch.setattr(checkpoints, "load_weights", refuse)


def test_a_missing_input_folder_fails_before_the_checkpoint_is_loaded(workspace, capsys, tmp_path,
                                                                      no_checkpoint_loading):
    err = _bad_input(workspace, capsys, tmp_path, inputpath=tmp_path / "nowhere",
                     checkpoint=tmp_path / "no_such_checkpoint")
    assert err == f"error: input folder {tmp_path / 'nowhere'} does not exist\n"


@pytest.mark.parametrize("case", ["file", "under_a_file"])
def test_a_savepath_that_cannot_be_a_folder_fails_before_the_checkpoint_is_loaded(
        workspace, capsys, tmp_path, no_checkpoint_loading, case):
    (tmp_path / "taken").write_text("a file")
    savepath = tmp_path / "taken" if case == "file" else tmp_path / "taken" / "deeper"
    err = _bad_input(workspace, capsys, tmp_path, savepath=savepath)
    assert err.startswith(f"error: --savepath {savepath / '01'}: ")
    assert f"{tmp_path / 'taken'} is a file, not a folder" in err
    assert (tmp_path / "taken").read_text() == "a file"


def test_a_kernel_ten_times_too_bright_is_refused_unless_normalised(workspace, capsys, tmp_path):
    import scipy.io

    bright = tmp_path / "bright.mat"
    scipy.io.savemat(bright, {"kernel": 10 * kernels.load_kernel(workspace / "kernel.mat")})
    err = _bad_input(workspace, capsys, tmp_path, kernelpath=bright)
    assert f"{bright}: kernel sums to 10, not 1" in err and "--normalize-kernel" in err
    code, out, err = _run(workspace, capsys, "--num", "1", "--savepath", str(tmp_path / "normalised"),
                          "--kernelpath", str(bright), "--normalize-kernel")
    assert code == 0, err
    assert "normalised to sum 1 (its sum: 10)" in out
    code, _, err = _run(workspace, capsys, "--num", "1", "--savepath", str(tmp_path / "proper"))
    assert code == 0, err
    normalised = json.loads((tmp_path / "normalised" / "01" / "results.json").read_text())
    proper = json.loads((tmp_path / "proper" / "01" / "results.json").read_text())
    assert normalised["kernel_normalized"] is True and proper["kernel_normalized"] is False
    assert [r["final_psnr"] for r in normalised["images"]] == pytest.approx(
        [r["final_psnr"] for r in proper["images"]], abs=1e-6)


def test_a_16_bit_rgb_input_is_refused(workspace, capsys, tmp_path):
    from pngs import write_png16

    folder = tmp_path / "deep"
    folder.mkdir()
    write_png16(folder / "a.png", np.full((12, 12, 3), 40000, np.uint16))
    err = _bad_input(workspace, capsys, tmp_path, inputpath=folder, gtpath="")
    assert "a.png: 16-bit PNG" in err and "8-bit RGB" in err


def test_gt_names_that_do_not_correspond_are_named_in_a_warning(workspace, capsys, tmp_path):
    import shutil

    gt = tmp_path / "GT"
    gt.mkdir()
    shutil.copy(workspace / "GT" / "a_GT.png", gt / "a_GT.png")  # the reference's naming: a.png <-> a_GT.png
    shutil.copy(workspace / "GT" / "b_GT.png", gt / "c.png")       # b.png's GT under another name
    code, out, err = _run(workspace, capsys, "--num", "1", "--savepath", str(tmp_path / "out"), gt=False)
    assert code == 0 and "warning" not in out  # no GT: nothing to compare
    code, out, err = _run(workspace, capsys, "--num", "1", "--savepath", str(tmp_path / "out"), "--gtpath", str(gt))
    assert code == 0 and err == "", err
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: 1 of 2 input/GT pairs have names that do not correspond (paired by sorted "
                        "order; GT of x.png: x.png or x_GT.png): b.png <-> c.png"]
    code, out, _ = _run(workspace, capsys, "--num", "1", "--savepath", str(tmp_path / "out"))
    assert code == 0 and "warning" not in out  # a.png <-> a_GT.png, b.png <-> b_GT.png


# --------------------------------------------------------------------------- x4 (--model 3's scale)

def _run_x4(workspace, capsys, inputpath, savepath, kernelpath="", *flags):
    argv = ["--model", "3", "--num", "1", "--inputpath", str(inputpath), "--gtpath", "",
            "--kernelpath", str(kernelpath), "--savepath", str(savepath),
            "--checkpoint", str(workspace / "ckpt" / "weights"), *flags]
    code = _load_main().main(argv)
    return code, capsys.readouterr()


def test_an_input_too_small_for_x4_is_refused_with_one_line(workspace, capsys, tmp_path):
    """12x12 at x4: the son would be 3x3. The same image runs at x2 (son 6x6), and 16x17 runs at x4. 13x15 runs
    with the reference's son grid (its son 4x4) but not with the default one (13x15 cropped to 12x12: son 3x3)."""
    folder = _folder_with(tmp_path, "small", np.full((12, 12, 3), 90, np.uint8))
    code, captured = _run_x4(workspace, capsys, folder, tmp_path / "out")
    assert code == 2
    assert captured.err == (f"error: input {folder / 'a.png'} (12x12) is too small for x4: its son would be 3x3; "
                            "at x4 an input needs at least 16 pixels a side (son at least 4x4)\n")
    assert not (tmp_path / "out" / "01").exists()
    folder = _folder_with(tmp_path, "x4cropped", np.full((13, 15, 3), 90, np.uint8))
    code, captured = _run_x4(workspace, capsys, folder, tmp_path / "out")
    assert code == 2
    assert captured.err == (f"error: input {folder / 'a.png'} (13x15) is too small for x4: its son would be 3x3 (of "
                            "the input cropped to 12x12, a multiple of the scale); at x4 an input needs at least 16 "
                            "pixels a side (son at least 4x4)\n")
    code, captured = _run_x4(workspace, capsys, folder, tmp_path / "ref", "", "--son-grid", "reference")
    assert code == 0, captured.err
    code, captured = _run_x4(workspace, capsys, _folder_with(tmp_path, "x4ok", np.full((16, 17, 3), 90, np.uint8)),
                             tmp_path / "ok")
    assert code == 0, captured.err
    # without GT the output is ceil(4 x shape)
    assert iio.imread(tmp_path / "ok" / "01" / "a.png").shape == (64, 68, 3)


def test_x4_son_of_a_small_input_with_a_21x21_kernel(workspace, capsys, tmp_path):
    """The son of a 22x25 input at x4 under a 21x21 kernel is 6x7, its output 88x100; one step runs and the
    result is not a constant image (the kernel is larger than the son, not than the input)."""
    rng = np.random.default_rng(3)
    hr = _smooth_image(rng, 88, 100)
    kernel = kernels.isotropic_gaussian(21, 2.0)
    lr = metrics.to_uint8(degradation.degrade(hr, kernel, 4.0))
    assert lr.shape == (22, 25, 3)
    folder = _folder_with(tmp_path, "x4", lr)
    kernels.save_kernel(tmp_path / "k21.mat", kernel)
    code, captured = _run_x4(workspace, capsys, folder, tmp_path / "out", kernelpath=tmp_path / "k21.mat")
    assert code == 0, captured.err
    sr = iio.imread(tmp_path / "out" / "01" / "a.png")
    assert sr.shape == (88, 100, 3) and sr.std() > 5
    results = json.loads((tmp_path / "out" / "01" / "results.json").read_text())
    assert results["images"][0]["son_losses"][0] > 0


@pytest.mark.parametrize("scale, gt_shape, lr_shape, no_gt_lr, no_gt_out", [
    # 2.5: GT 100x95 -> LR 40x38 (exact); a 41x39 input without GT -> ceil(102.5 x 97.5) = 103x98
    ("2.5", (100, 95), (40, 38), (41, 39), (103, 98)),
    # 3: GT 36x42 -> LR 12x14 (its son made of the top-left 12x12); 14x13 without GT -> 42x39
    ("3", (36, 42), (12, 14), (14, 13), (42, 39)),
])
def test_a_non_integer_or_odd_scale_runs_end_to_end(workspace, capsys, tmp_path, scale, gt_shape, lr_shape,
                                                    no_gt_lr, no_gt_out):
    """`--model 1 --scale S` (the multi-scale preset at a factor it was not trained at as a default): the LR made
    from the GT at S, the SR of the GT's shape, PSNR on Y shaved by int(S) (the reference's ``[scale:-scale]``
    slice fails for a non-integer scale), and without GT an output of ceil(S x shape)."""
    rng = np.random.default_rng(5)
    kernel = kernels.isotropic_gaussian(9, 1.5)
    gt = _smooth_image(rng, *gt_shape)
    lr = metrics.to_uint8(degradation.degrade(gt, kernel, float(scale)))
    assert lr.shape[:2] == lr_shape
    for name, image in [("GT", metrics.to_uint8(gt)), ("LR", lr)]:
        (tmp_path / name).mkdir()
        iio.imwrite(tmp_path / name / "a.png", image)
    kernels.save_kernel(tmp_path / "k.mat", kernel)
    common = ["--model", "1", "--scale", scale, "--num", "2", "--kernelpath", str(tmp_path / "k.mat"),
              "--checkpoint", str(workspace / "ckpt" / "weights")]
    main = _load_main().main
    code = main(common + ["--inputpath", str(tmp_path / "LR"), "--gtpath", str(tmp_path / "GT"),
                          "--savepath", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"x{scale}" in captured.out
    sr = iio.imread(tmp_path / "out" / "02" / "a.png")
    assert sr.shape == gt_shape + (3,)
    results = json.loads((tmp_path / "out" / "02" / "results.json").read_text())
    assert results["scale"] == float(scale) and len(results["images"][0]["son_losses"]) == 2
    shave = int(float(scale))
    crop = (slice(shave, -shave), slice(shave, -shave))

    def y_rounded(rgb_uint8):  # BT.601 Y in [16, 235], rounded to integers, written out by hand
        rgb = rgb_uint8.astype(np.float64)
        return np.round(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255)[crop]

    mse = np.mean((y_rounded(sr) - y_rounded(metrics.to_uint8(gt))) ** 2)
    assert results["images"][0]["final_psnr"] == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-6)

    (tmp_path / "small").mkdir()
    iio.imwrite(tmp_path / "small" / "a.png", metrics.to_uint8(_smooth_image(rng, *no_gt_lr)))
    code = main(common + ["--inputpath", str(tmp_path / "small"), "--gtpath", "", "--savepath", str(tmp_path / "nogt")])
    assert code == 0, capsys.readouterr().err
    assert iio.imread(tmp_path / "nogt" / "02" / "a.png").shape == no_gt_out + (3,)


# --------------------------------------------------------------------------- tiles (large images)

def test_tiled_run_writes_the_whole_image_runs_numbers(workspace, capsys, tmp_path):
    """--tile 16 (2 x 2 gradient tiles on the 18x20 input a, and 2 x 2 forward tiles: forward tiles are 2 x 16 output
    pixels a side; the 15x14 input b fits in one tile, so it runs whole) against --tile 0."""
    results = {}
    for tile in ("0", "16"):
        code, out, err = _run(workspace, capsys, "--num", "2", "--tile", tile, "--savepath", str(tmp_path / tile))
        assert code == 0, err
        results[tile] = json.loads((tmp_path / tile / "02" / "results.json").read_text())
        if tile == "16":
            assert ", tile 16, peak memory " in out and "adaptation step 2: 4 tiles" in err
            assert "SR image after 2 step(s): 4 tiles," in err
        else:
            assert ", tile whole image, peak memory " in out
    for whole, tiled in zip(results["0"]["images"], results["16"]["images"]):
        assert (whole["tile"], tiled["tile"]) == (0, 16 if whole["name"] == "a" else 0)
        assert tiled["final_psnr"] == pytest.approx(whole["final_psnr"], abs=0.01)
        a = iio.imread(tmp_path / "0" / "02" / f"{whole['name']}.png").astype(int)
        b = iio.imread(tmp_path / "16" / "02" / f"{whole['name']}.png").astype(int)
        assert np.abs(a - b).max() <= 1


@pytest.mark.parametrize("flags, message", [
    (["--tile", "8"], "argument --tile: 8 is smaller than 16 pixels"),
    (["--tile", "-2"], "argument --tile: must be 0 (the whole image), a positive number of pixels or 'auto'"),
    (["--tile", "big"], "argument --tile: expected 'auto' or a whole number of pixels, got 'big'"),
    (["--max-memory", "0"], "argument --max-memory: must be positive, got 0"),
    (["--max-memory", "2X"], "argument --max-memory: expected a size such as 2G"),
])
def test_bad_tile_flags_are_refused_by_the_parser(capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        _load_main().main(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_max_memory_too_small_for_any_tile_names_the_input_before_loading(workspace, capsys, tmp_path,
                                                                           no_checkpoint_loading):
    code, out, err = _run(workspace, capsys, "--max-memory", "1M", "--savepath", str(tmp_path / "out"))
    assert code == 2
    assert err.startswith(f"error: {workspace / 'LR' / 'a.png'}: max memory 0.00 GB is too small for a 18x20 input")
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()
