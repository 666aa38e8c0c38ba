"""Tests for mzsr_tf.evaluate and scripts/evaluate.py on a tiny test set and a tiny checkpoint."""
import csv
import dataclasses
import importlib.util
import json
import pathlib

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import evaluate, metrics, testsets
from mzsr_tf.adaptation import adapt_steps
from mzsr_tf.checkpoints import export_weights
from mzsr_tf.config import AdaptationConfig, ModelConfig, PiecewiseConstant, get_preset
from mzsr_tf.degradation import degrade
from mzsr_tf.evaluate import EvaluationError, ZSSRConfig
from mzsr_tf.imresize import imresize
from mzsr_tf.kernels import KernelSource, load_kernel
from mzsr_tf.meta_test import MetaTester, run_folder
from mzsr_tf.model import MZSRNet
from synthetic import cosine_image

KERNELS = ["g20", "b13", "g20x4"]
STEPS = [0, 1, 2]


def _load_script():
    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
    spec = importlib.util.spec_from_file_location("evaluate_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _textured_image(rng, height, width):
    """Smooth random cosines plus fine detail, uint8 RGB."""
    return np.round(cosine_image(rng, height, width, waves=6, frequencies=(1, 12)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A test set of two small images named like the paper's set "Set5" and a seeded checkpoint."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    (root / "hr" / "Set5").mkdir(parents=True)
    iio.imwrite(root / "hr" / "Set5" / "a.png", _textured_image(rng, 88, 86))  # 86 -> 84 by modcrop 4
    iio.imwrite(root / "hr" / "Set5" / "b.png", _textured_image(rng, 92, 96))
    testsets.make_testset(str(root / "hr"), str(root / "ts"), KERNELS, log=lambda s: None)
    model = MZSRNet(seed=0)
    model(tf.zeros([1, 8, 8, 3]))
    checkpoint = export_weights(model, str(root / "ckpt" / "tiny"))
    return {"root": root, "testsets": root / "ts", "checkpoint": checkpoint, "model": model}


@pytest.fixture(scope="module")
def evaluated(tiny):
    """One evaluation of the tiny set through the script: steps 0 1 2, bicubic and a short ZSSR."""
    out = tiny["root"] / "out"
    code = _load_script().main(
        ["--checkpoint", tiny["checkpoint"], "--testsets", str(tiny["testsets"]), "--steps", *map(str, STEPS),
         "--baselines", "bicubic,zssr", "--zssr-steps", "4", "--out", str(out)])
    assert code == 0
    return {**tiny, "out": out, "results": json.loads((out / "results.json").read_text())}


@pytest.mark.slow
def test_every_cell_has_every_column(evaluated):
    results = evaluated["results"]
    columns = ["bicubic", "zssr", "mzsr_0", "mzsr_1", "mzsr_2"]
    assert results["columns"] == columns
    assert [(c["kernel"], c["set"]) for c in results["cells"]] == [("g20", "Set5"), ("b13", "Set5"),
                                                                    ("g20x4", "Set5")]
    for cell in results["cells"]:
        assert cell["images"] == 2
        assert sorted(cell["columns"]) == sorted(columns)
        assert all(np.isfinite(v["psnr"]) and 0 < v["ssim"] <= 1 for v in cell["columns"].values())
    with open(evaluated["out"] / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 5
    assert {(r["kernel"], r["method"], r["steps"]) for r in rows} >= {("g20", "mzsr", "2"), ("b13", "bicubic", "")}
    table = (evaluated["out"] / "results.md").read_text()
    ours = [line for line in table.splitlines() if "| ours |" in line]
    assert len(ours) == 3 and all(line.count("/0.") == 5 and "–" not in line for line in ours)
    # the tiny set is named Set5, so the paper's Set5 numbers are shown beside ours
    assert "| | | paper | 28.73/0.8449 | 34.90/0.9397 | – | 35.20/0.9398 | – |" in table
    assert "| g^d_2.0 (x4) (`g20x4`) | Set5 | ours |" in table


@pytest.mark.slow
def test_numbers_equal_a_direct_meta_test(evaluated, tmp_path):
    records = {(r["kernel"], r["image"]): r["columns"] for r in evaluated["results"]["images"]}
    for kernel_name in KERNELS:
        paper_kernel = testsets.get_kernel(kernel_name)
        kernel_path = evaluated["testsets"] / "Input" / kernel_name / "kernel.mat"
        kernel_source = KernelSource.fixed(load_kernel(kernel_path).astype(np.float32), str(kernel_path))
        config = get_preset(paper_kernel.preset).adaptation_config(num_steps=2)
        summary = run_folder(MetaTester(evaluated["model"].trainable_variables, config),
                             str(evaluated["testsets"] / "Input" / kernel_name / "Set5"), str(tmp_path / kernel_name),
                             kernel_source, gt_dir=str(evaluated["testsets"] / paper_kernel.gt_folder / "Set5"),
                             log=lambda s: None)
        for image in summary["images"]:
            columns = records[(kernel_name, image["name"])]
            assert columns["mzsr_0"]["psnr"] == image["initial_psnr"]
            assert columns["mzsr_0"]["ssim"] == image["initial_ssim"]
            assert columns["mzsr_2"]["psnr"] == image["final_psnr"]
            assert columns["mzsr_2"]["ssim"] == image["final_ssim"]
            # bicubic: MATLAB-style cubic interpolation (float64) of the LR input the network sees
            lr = (iio.imread(image["input"]).astype(np.float32) / 255).astype(np.float64)
            gt = metrics.modcrop(iio.imread(image["gt"]), paper_kernel.scale)
            bicubic = imresize(lr, scale=paper_kernel.scale, output_shape=gt.shape, kernel="cubic")
            assert columns["bicubic"]["psnr"] == metrics.psnr_y(np.clip(bicubic, 0, 1), gt, int(paper_kernel.scale))


@pytest.mark.slow
def test_figures_are_written(evaluated):
    figures = evaluated["out"] / "figures"
    for name in ["psnr_vs_steps.png", "crops_g20.png", "crops_b13.png", "crops_g20x4.png"]:
        image = iio.imread(figures / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 10  # not blank


def test_zssr_stops_early_when_the_son_loss_stalls(tiny):
    # improvement never reaches 90%, so the first check that can judge (after 2 x 2 steps) stops it
    budget = ZSSRConfig(max_steps=10, check_every=2, patience=1, min_rel_improvement=0.9)
    config = get_preset("direct_x2").adaptation_config()
    runner = evaluate.ZSSRBaseline(tiny["model"].trainable_variables, config, budget)
    kernel = testsets.get_kernel("g20").kernel()
    lr = iio.imread(tiny["testsets"] / "Input" / "g20" / "Set5" / "a.png").astype(np.float32) / 255
    result = runner.run(lr, kernel, (88, 84))
    assert result.steps == 4 and result.son_losses.shape == (4,)
    # the same four steps written out eagerly from the same son, made as MZSR's (son grid 'exact'): of the
    # input's top-left 44x42, its width 43 being odd
    assert lr.shape == (44, 43, 3)
    son = degrade(lr[:, :42].astype(np.float64), kernel, 2.0)
    son_ilr = imresize(son, scale=2.0, output_shape=(44, 42, 3), kernel="cubic")
    params, losses = adapt_steps(tiny["model"].trainable_variables, tf.constant(son_ilr[None], tf.float32),
                                 tf.constant(lr[None, :, :42]), config.inner_lr.rates(4))
    np.testing.assert_allclose(result.son_losses, [float(x) for x in losses], rtol=1e-5)
    lr_ilr = imresize(lr.astype(np.float64), scale=2.0, output_shape=(88, 84, 3), kernel="cubic")
    from mzsr_tf.model import forward
    expected = np.clip(forward(params, tf.constant(lr_ilr[None], tf.float32))[0].numpy(), 0, 1)
    np.testing.assert_allclose(result.sr, expected, atol=1e-5)
    # with son grid 'reference' (scripts/evaluate.py --son-grid reference) its son is of the whole 44x43 input
    runner = evaluate.ZSSRBaseline(tiny["model"].trainable_variables,
                                   get_preset("direct_x2").adaptation_config(son_grid="reference"), budget)
    son_ilr = imresize(degrade(lr.astype(np.float64), kernel, 2.0), scale=2.0, output_shape=lr.shape, kernel="cubic")
    _, losses = adapt_steps(tiny["model"].trainable_variables, tf.constant(son_ilr[None], tf.float32),
                            tf.constant(lr[None]), config.inner_lr.rates(4))
    np.testing.assert_allclose(runner.run(lr, kernel, (88, 84)).son_losses, [float(x) for x in losses], rtol=1e-5)


@pytest.mark.parametrize("losses, stop", [
    ([1.0, 0.9, 0.8, 0.7], False),                # only two checks: not enough to judge with patience 2
    ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], False),      # still improving
    ([1.0, 0.9, 0.8, 0.7, 0.7, 0.7], False),      # check 2 improved (0.8 -> 0.7), check 3 did not
    ([1.0, 0.9, 0.9, 0.9, 0.9, 0.9], True),       # checks 2 and 3 stalled
    ([1.0, 0.9, 0.8999, 0.9, 0.9, 0.8995], True), # improvements below 0.1 % do not count
])
def test_zssr_stopping_rule(losses, stop):
    config = ZSSRConfig(max_steps=100, check_every=2, patience=2, min_rel_improvement=1e-3)
    assert evaluate.zssr_should_stop(np.asarray(losses), config) is stop


def test_markdown_table_layout():
    results = {"columns": ["bicubic", "mzsr_1"],
               "cells": [{"kernel": "g20", "paper_kernel": "g^d_2.0", "set": "Set5",
                          "columns": {"bicubic": {"psnr": 28.7312, "ssim": 0.84491},
                                      "mzsr_1": {"psnr": 35.0, "ssim": 0.9}},
                          "paper": {"bicubic": {"psnr": 28.73, "ssim": 0.8449}}},
                         {"kernel": "g20", "paper_kernel": "g^d_2.0", "set": "Set14",
                          "columns": {"bicubic": {"psnr": 26.0, "ssim": 0.7},
                                      "mzsr_1": {"psnr": 30.0, "ssim": 0.8}}, "paper": {}}],
               "son_grid": "exact"}
    assert evaluate.markdown_table(results) == "\n".join([
        "| Kernel | Dataset | | Bicubic | MZSR (1) |",
        "|---|---|---|---|---|",
        "| g^d_2.0 (`g20`) | Set5 | ours | 28.73/0.8449 | 35.00/0.9000 |",
        "| | | paper | 28.73/0.8449 | – |",
        "|  | Set14 | ours | 26.00/0.7000 | 30.00/0.8000 |"])
    # results written before the son grid was recorded were made with the reference's, and say so
    del results["son_grid"]
    assert "| g^d_2.0 (`g20`) | Set5 | ours, reference son grid | 28.73/0.8449" in evaluate.markdown_table(results)


@pytest.mark.slow
def test_a_preset_for_every_kernel_meta_tests_each_at_its_own_scale(tiny):
    """--preset multiscale: the multi-scale schedule (1e-2 for steps 1-3, then 5e-3), written out here, at
    x2 and at x4; --limit 1 keeps the first image by name; the paper row is the multi-scale model's."""
    cells = evaluate.find_cells(str(tiny["testsets"]), ["g20", "g20x4"], ["Set5"])
    results = evaluate.evaluate(cells, {"multiscale": tiny["checkpoint"]}, steps=[4], baselines=[],
                                log=lambda s: None, preset="multiscale", limit=1)
    plain = evaluate.evaluate(cells, {"direct_x2": tiny["checkpoint"], "direct_x4": tiny["checkpoint"]},
                              steps=[4], baselines=[], log=lambda s: None, limit=1)
    assert [(r["kernel"], r["image"]) for r in results["images"]] == [("g20", "a"), ("g20x4", "a")]
    schedule = PiecewiseConstant((3,), (1e-2, 5e-3))
    for record, plain_record, cell in zip(results["images"], plain["images"], cells):
        scale = cell.paper_kernel.scale
        config = AdaptationConfig(scale=scale, ds_method="direct", inner_lr=schedule)
        lr = iio.imread(record["input"]).astype(np.float32) / 255
        gt = metrics.modcrop(iio.imread(record["gt"]), scale)
        kernel = load_kernel(str(tiny["testsets"] / "Input" / record["kernel"] / "kernel.mat")).astype(np.float32)
        sr = MetaTester(tiny["model"].trainable_variables, config).adapt_at_steps(
            lr, kernel, [4], output_shape=gt.shape[:2]).srs[4]
        assert record["columns"]["mzsr_4"]["psnr"] == metrics.psnr_y(sr, gt, int(scale))
        assert plain_record["columns"]["mzsr_4"]["psnr"] != record["columns"]["mzsr_4"]["psnr"]  # other schedule
    assert [cell["preset"] for cell in results["cells"]] == ["multiscale", "multiscale"]
    assert [cell["images"] for cell in results["cells"]] == [1, 1]
    assert results["cells"][0]["paper"] == {"mzsr_10": {"psnr": 35.67, "ssim": None}}  # the paper, Set5 g20
    assert results["cells"][1]["paper"] == {}  # x4: the paper shows images only
    assert plain["cells"][0]["paper"]["mzsr_10"] == {"psnr": 36.05, "ssim": 0.9439}  # Directx2's own row


def test_a_preset_must_subsample_as_the_kernel_does(tiny):
    cells = evaluate.find_cells(str(tiny["testsets"]), ["b13"], ["Set5"])
    with pytest.raises(EvaluationError, match="^kernel b13 uses bicubic subsampling, but preset multiscale "
                                              "meta-tests with direct subsampling$"):
        evaluate.evaluate(cells, {"multiscale": tiny["checkpoint"]}, steps=[1], preset="multiscale")


def test_a_paper_number_without_ssim_is_printed_without_it():
    results = {"columns": ["mzsr_10"],
               "cells": [{"kernel": "g20", "paper_kernel": "g^d_2.0", "set": "Set5",
                          "columns": {"mzsr_10": {"psnr": 35.0, "ssim": 0.9}},
                          "paper": {"mzsr_10": {"psnr": 35.67, "ssim": None}}}]}
    assert evaluate.markdown_table(results).splitlines()[-1] == "| | | paper | 35.67/– |"


def _run(tiny, capsys, *flags):
    args = ["--testsets", str(tiny["testsets"]), "--out", str(tiny["root"] / "bad"), *flags]
    if "--checkpoint" not in flags:
        args += ["--checkpoint", tiny["checkpoint"]]
    code = _load_script().main(args)
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error, error
    return error


def test_bad_inputs_are_one_line_errors(tiny, capsys, tmp_path):
    assert _run(tiny, capsys, "--sets", "Set5,BSD100").startswith(
        f"error: set(s) BSD100 not found in {tiny['testsets'] / 'Input' / 'g20'}; available: Set5")
    assert _run(tiny, capsys, "--kernels", "g99").startswith(
        "error: unknown kernel 'g99'; known kernels: g02 (g^d_0.2), g20 (g^d_2.0), gani (g^d_ani), "
        "b13 (g^b_1.3), g20x4 (g^d_2.0 (x4))")
    assert _run(tiny, capsys, "--kernels", "gani") == (
        f"error: kernel(s) gani not in test set {tiny['testsets']}; it has: b13, g20, g20x4")
    assert _run(tiny, capsys, "--checkpoint", str(tmp_path / "nothing")).startswith(
        f"error: no checkpoint at {tmp_path / 'nothing'}")
    assert _run(tiny, capsys, "--testsets", str(tmp_path / "none")) == (
        f"error: test-set folder {tmp_path / 'none'} does not exist")
    assert "unknown baseline(s) zzsr" in _run(tiny, capsys, "--baselines", "zzsr")
    assert _run(tiny, capsys, "--limit", "-1") == "error: limit must be >= 0 (0: every image), got -1"
    assert _run(tiny, capsys, "--preset", "multiscale", "--kernels", "b13") == (
        "error: kernel b13 uses bicubic subsampling, but preset multiscale meta-tests with direct subsampling")
    assert not (tiny["root"] / "bad").exists()


def test_missing_gt_folder_and_unpaired_images(tiny, tmp_path):
    import shutil

    copy = tmp_path / "ts"
    shutil.copytree(tiny["testsets"], copy)
    shutil.rmtree(copy / "GT_x4")
    with pytest.raises(EvaluationError, match=r"GT folder .*GT_x4/Set5 for g20x4/Set5 does not exist"):
        evaluate.find_cells(str(copy))
    (copy / "GT" / "Set5" / "a.png").unlink()
    cells = evaluate.find_cells(str(copy), ["g20"])
    with pytest.raises(EvaluationError, match=r"2 images in .*Input/g20/Set5 but 1 in .*GT/Set5"):
        evaluate.check_cells(cells)
    with pytest.raises(EvaluationError, match=r"step counts must be integers >= 0, got \[1, -1\]"):
        evaluate.evaluate(cells, {"direct_x2": tiny["checkpoint"]}, steps=[1, -1])



@pytest.mark.slow
def test_a_kernel_folder_may_hold_one_kernel_per_image(tiny, tmp_path):
    import shutil

    from mzsr_tf.kernels import KernelError, isotropic_gaussian, save_kernel

    copy = tmp_path / "ts"
    shutil.copytree(tiny["testsets"], copy)
    kernel_dir = copy / "Input" / "g20"
    (kernel_dir / "kernel.mat").unlink()
    per_image = {"a": isotropic_gaussian(21, 1.0), "b": isotropic_gaussian(15, 3.0)}
    for stem, kernel in per_image.items():
        save_kernel(kernel_dir / f"{stem}.mat", kernel)
    cells = evaluate.find_cells(str(copy), ["g20"])
    image_kernels = evaluate.check_cells(cells)
    for stem, kernel in per_image.items():
        image_kernel = image_kernels[str(kernel_dir / "Set5" / f"{stem}.png")]
        assert image_kernel.origin == str(kernel_dir / f"{stem}.mat")
        np.testing.assert_array_equal(image_kernel.kernel, kernel.astype(np.float32))
    # each image adapted with its own kernel: the numbers of a meta-test given the same kernel folder
    results = evaluate.evaluate(cells, {"direct_x2": tiny["checkpoint"]}, steps=[1], baselines=[],
                                log=lambda s: None)
    config = get_preset("direct_x2").adaptation_config(num_steps=1)
    summary = run_folder(MetaTester(tiny["model"].trainable_variables, config), str(kernel_dir / "Set5"),
                         str(tmp_path / "meta_test"), KernelSource.from_folder(kernel_dir),
                         gt_dir=str(copy / "GT" / "Set5"), log=lambda s: None)
    assert [r["kernel_file"] for r in results["images"]] == [str(kernel_dir / "a.mat"), str(kernel_dir / "b.mat")]
    assert [r["columns"]["mzsr_1"]["psnr"] for r in results["images"]] == [
        image["final_psnr"] for image in summary["images"]]
    (kernel_dir / "b.mat").unlink()
    with pytest.raises(KernelError, match=r"no kernel for image .*b\.png"):
        evaluate.check_cells(evaluate.find_cells(str(copy), ["g20"]))
    (kernel_dir / "a.mat").unlink()
    with pytest.raises(EvaluationError, match=r"kernel file .*g20/kernel\.mat is missing"):
        evaluate.find_cells(str(copy), ["g20"])

def test_narrow_model_is_not_loaded_silently(tiny, tmp_path, capsys):
    narrow = MZSRNet(ModelConfig(width=8), seed=0)
    narrow(tf.zeros([1, 8, 8, 3]))
    prefix = export_weights(narrow, str(tmp_path / "narrow"))
    assert "shape" in _run(tiny, capsys, "--checkpoint", prefix, "--kernels", "g20")


def test_an_out_that_is_a_file_is_refused_before_any_image_is_computed(tiny, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "evaluate", lambda *args, **kwargs: pytest.fail("evaluated before the check"))
    (tmp_path / "results").write_text("a file")
    assert _run(tiny, capsys, "--out", str(tmp_path / "results")) == (
        f"error: --out {tmp_path / 'results'}: is a file, not a folder")
    assert (tmp_path / "results").read_text() == "a file"


@pytest.mark.slow
def test_outputs_leave_no_temporary_files(evaluated):
    written = sorted(str(p.relative_to(evaluated["out"])) for p in evaluated["out"].rglob("*"))
    assert written == ["figures", "figures/crops_b13.png", "figures/crops_g20.png", "figures/crops_g20x4.png",
                       "figures/psnr_vs_steps.png", "results.csv", "results.json", "results.md"]


@pytest.mark.slow
def test_son_grid_reference_equals_a_direct_meta_test_and_is_labelled(evaluated, tmp_path):
    """--son-grid reference: the x4 numbers of image a (input 22x21, not a multiple of 4) are those of a direct
    meta-test with son_grid 'reference', differ from the default (exact) son's, and the table says which son made
    them."""
    out = tmp_path / "reference"
    code = _load_script().main(["--checkpoint", evaluated["checkpoint"], "--testsets", str(evaluated["testsets"]),
                                "--kernels", "g20x4", "--steps", "1", "2", "--baselines", "--son-grid", "reference",
                                "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["son_grid"] == "reference" and evaluated["results"]["son_grid"] == "exact"
    table = (out / "results.md").read_text()
    assert "| g^d_2.0 (x4) (`g20x4`) | Set5 | ours, reference son grid |" in table and "son grid `reference`" in table

    kernel_path = evaluated["testsets"] / "Input" / "g20x4" / "kernel.mat"
    config = dataclasses.replace(get_preset("direct_x4").adaptation_config(num_steps=2), son_grid="reference")
    summary = run_folder(MetaTester(evaluated["model"].trainable_variables, config),
                         str(evaluated["testsets"] / "Input" / "g20x4" / "Set5"), str(tmp_path / "direct"),
                         KernelSource.fixed(load_kernel(kernel_path).astype(np.float32), str(kernel_path)),
                         gt_dir=str(evaluated["testsets"] / "GT_x4" / "Set5"), log=lambda s: None)
    reference = {r["image"]: r["columns"] for r in results["images"]}
    exact = {r["image"]: r["columns"] for r in evaluated["results"]["images"] if r["kernel"] == "g20x4"}
    for image in summary["images"]:
        assert reference[image["name"]]["mzsr_2"]["psnr"] == image["final_psnr"]
    assert iio.imread(evaluated["testsets"] / "Input" / "g20x4" / "Set5" / "a.png").shape[:2] == (22, 21)
    assert exact["a"]["mzsr_2"]["psnr"] != reference["a"]["mzsr_2"]["psnr"]
    assert iio.imread(evaluated["testsets"] / "Input" / "g20x4" / "Set5" / "b.png").shape[:2] == (23, 24)
