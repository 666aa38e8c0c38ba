"""Images without a kernel (mzsr_tf.blind): --estimate-kernel and its errors, scripts/estimate_kernel.py, and
the blind benchmark's arithmetic (gap recovered, images worse than the fallback) against hand computations."""
import importlib.util
import json
import pathlib

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import blind, checkpoints, degradation, kernels, metrics
from mzsr_tf.model import MZSRNet
from synthetic import cosine_image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
FEW_ITERATIONS = "6"  # the CLI paths, not the estimate's quality (tests/test_kernel_estimation.py)


def _script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def blind_workspace(tmp_path_factory):
    """Two 70x66 LR inputs (no kernel files), a 40x40 one (too small to estimate from) and a checkpoint."""
    root = tmp_path_factory.mktemp("blind")
    kernel = kernels.anisotropic_gaussian(21, 0.4, 3.0, 1.0)
    (root / "LR").mkdir()
    for index, name in enumerate(("p", "q")):
        hr = cosine_image(np.random.default_rng(index), 140, 132)
        iio.imwrite(root / "LR" / f"{name}.png", metrics.to_uint8(degradation.degrade(hr, kernel, 2.0)))
    (root / "small").mkdir()
    iio.imwrite(root / "small" / "tiny.png", metrics.to_uint8(cosine_image(np.random.default_rng(5), 40, 40)))
    model = MZSRNet(seed=1)
    model(tf.zeros([1, 8, 8, 3]))
    checkpoints.export_weights(model, str(root / "ckpt" / "weights"))
    return root


def _main(blind_workspace, capsys, *extra, inputs="LR"):
    argv = ["--inputpath", str(blind_workspace / inputs), "--gtpath", "", "--num", "1",
            "--checkpoint", str(blind_workspace / "ckpt" / "weights")] + list(extra)
    code = _script("main")(argv)
    return code, capsys.readouterr()


@pytest.mark.parametrize("estimator", ["edges", "kernelgan"])
def test_estimate_kernel_without_gt_saves_each_kernel_beside_its_output(blind_workspace, capsys, tmp_path, estimator):
    extra = ["--estimator", "kernelgan", "--estimate-iterations", FEW_ITERATIONS] if estimator == "kernelgan" else []
    code, captured = _main(blind_workspace, capsys, "--estimate-kernel", *extra,
                           "--savepath", str(tmp_path / "out"), "--figure", str(tmp_path / "before_after.png"))
    assert code == 0, captured.err
    assert iio.imread(tmp_path / "before_after.png").ndim == 3
    out = tmp_path / "out" / "01"
    results = json.loads((out / "results.json").read_text())
    for name in ("p", "q"):
        assert iio.imread(out / f"{name}.png").shape == (140, 132, 3)
        estimate = kernels.load_kernel(out / f"{name}.mat")  # a proper kernel: 21x21, non-negative, sums to 1
        assert estimate.shape == (21, 21) and estimate.min() >= 0 and abs(estimate.sum() - 1) < 1e-6
        assert (out / f"{name}_kernel.png").exists()
    assert [r["kernel"] for r in results["images"]] == [str(out / "p.mat"), str(out / "q.mat")]
    estimation = results["kernel_estimation"]
    assert estimation["estimator"] == estimator and set(estimation["images"]) == {"p", "q"}
    if estimator == "kernelgan":
        assert estimation["config"]["iterations"] == int(FEW_ITERATIONS)
    assert all(entry["seconds"] > 0 for entry in estimation["images"].values())
    assert "estimating the kernel of p" in captured.out  # progress lines
    # the saved folder serves as --kernelpath of a later run and gives the same result
    code, captured = _main(blind_workspace, capsys, "--kernelpath", str(out), "--savepath", str(tmp_path / "again"))
    assert code == 0, captured.err
    again = json.loads((tmp_path / "again" / "01" / "results.json").read_text())
    np.testing.assert_array_equal(iio.imread(tmp_path / "again" / "01" / "p.png"), iio.imread(out / "p.png"))
    assert [r["kernel"] for r in again["images"]] == [r["kernel"] for r in results["images"]]


@pytest.mark.parametrize("extra, message", [
    (["--estimate-kernel", "--kernelpath", "k.mat"], "--estimate-kernel and --kernelpath together"),
    (["--estimate-kernel", "--kernelpath", ""], "--estimate-kernel and --kernelpath together"),
    (["--estimate-iterations", "5"], "--estimate-iterations is a setting of --estimate-kernel"),
    (["--estimate-kernel", "--estimator", "kernelgan", "--estimate-iterations", "0"], "--estimate-iterations 0: "),
    (["--estimate-kernel", "--estimate-iterations", "5"], "--estimate-iterations 5: the edges estimator has no"),
    (["--estimator", "kernelgan"], "--estimator is a setting of --estimate-kernel"),
])
def test_estimate_kernel_flag_errors(blind_workspace, capsys, tmp_path, extra, message):
    code, captured = _main(blind_workspace, capsys, *extra, "--savepath", str(tmp_path / "out"))
    assert code == 2
    assert captured.err.startswith(f"error: {message}") and captured.err.count("\n") == 1, captured.err
    assert not (tmp_path / "out").exists()


def test_an_image_too_small_to_estimate_from_is_named(blind_workspace, capsys, tmp_path):
    """40x40: enough for the edges estimator (32), not for KernelGAN (its 64x64 crops)."""
    code, captured = _main(blind_workspace, capsys, "--estimate-kernel", "--estimator", "kernelgan",
                           "--savepath", str(tmp_path / "out"), inputs="small")
    assert code == 2
    assert captured.err == (f"error: input {blind_workspace / 'small' / 'tiny.png'} (40x40) is too small to "
                            "estimate its kernel from: the estimator needs at least 64x64 pixels\n")
    code = _script("estimate_kernel")(["--estimator", "kernelgan", "--inputpath", str(blind_workspace / "small"),
                                       "--savepath", str(tmp_path / "kernels")])
    assert code == 2 and "tiny.png (40x40) is too small" in capsys.readouterr().err
    assert not (tmp_path / "kernels").exists()


def test_estimate_kernel_script_writes_kernels_figures_and_seconds(blind_workspace, capsys, tmp_path):
    code = _script("estimate_kernel")(["--estimator", "kernelgan", "--inputpath", str(blind_workspace / "LR"),
                                       "--savepath", str(tmp_path / "k"), "--iterations", FEW_ITERATIONS])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "k" / "estimation.json").read_text())
    assert sorted(record["images"]) == ["p", "q"]
    seconds = [entry["seconds"] for entry in record["images"].values()]
    assert record["seconds_per_image"] == pytest.approx(np.mean(seconds))
    for name in ("p", "q"):
        assert kernels.load_kernel(tmp_path / "k" / f"{name}.mat").shape == (21, 21)
        assert iio.imread(tmp_path / "k" / f"{name}_kernel.png").ndim == 3


def _records(set_name, column, psnrs):
    return {"images": [{"set": set_name, "image": image, "columns": {column: {"psnr": value}}}
                       for image, value in psnrs.items()]}


def test_gap_recovered_and_images_worse_than_the_fallback_by_hand():
    true = {"a": 30.0, "b": 28.0, "c": 26.0, "d": 32.0}
    fallback = {"a": 27.0, "b": 27.0, "c": 25.0, "d": 29.0}
    estimated = {"a": 29.0, "b": 26.5, "c": 25.5, "d": 31.0}   # b is worse than the fallback
    per_assumption = {name: _records("S", "mzsr_10", values)
                      for name, values in (("true", true), ("bicubic", fallback), ("estimated:e", estimated))}
    row = blind.compare_assumptions(per_assumption, "S", [10])["mzsr_10"]
    # means: true 29.0, fallback 27.0, estimated 28.0 -> half of the 2 dB gap
    assert row["mean_psnr"] == {"true": 29.0, "bicubic": 27.0, "estimated:e": 28.0}
    assert row["gap_recovered"]["e"] == pytest.approx(0.5)
    assert row["worse_than_fallback"]["e"] == 1 and row["worse_than_fallback_share"]["e"] == 0.25
    assert row["images"] == 4


def test_assumption_sources():
    true_source = kernels.KernelSource.fixed(kernels.isotropic_gaussian(21, 1.0), "true.mat")
    assert blind.assumption_source("true", true_source, "unused") is true_source
    assert blind.assumption_source("bicubic", true_source, "unused").kernel_for("x.png").kernel is None
    g20 = blind.assumption_source("g20", true_source, "unused").kernel_for("x.png").kernel
    np.testing.assert_allclose(g20, kernels.isotropic_gaussian(21, 2.0))
    with pytest.raises(ValueError, match="unknown kernel assumption 'psf'"):
        blind.assumption_source("psf", true_source, "unused")
    assert blind.assumption_title("estimated:edges") == "estimated kernels (edges)"


def test_reusable_evaluations_need_the_same_checkpoint_steps_sets_son_grid_and_estimates():
    images = [{"set": "A", "image": "x"}, {"set": "B", "image": "y"}]
    cells = [{"set": "A"}, {"set": "B"}]
    previous = {"checkpoint": "ck", "steps": [1, 10], "evaluations": {
        "true": {"images": images, "cells": cells, "son_grid": "exact"},
        "g20": {"images": images, "cells": cells, "son_grid": "reference"},
        "bicubic": {"images": images, "cells": cells}}}         # written before son grids: the reference's
    reused = blind.reusable_evaluations(previous, "ck", (1, 10), ["A"])
    assert set(reused) == {"true"}
    # an estimator's row only with the same estimates (its estimation.json records) for every set asked for
    records = {"A": {"config": {"edge_threshold": 0.1}}, "B": {"config": {"edge_threshold": 0.2}}}
    previous["evaluations"]["estimated:edges"] = {"images": images, "cells": cells, "son_grid": "exact"}
    previous["estimation"] = {"edges": records}
    assert "estimated:edges" in blind.reusable_evaluations(previous, "ck", (1, 10), ["A"], {"edges": records})
    assert "estimated:edges" in blind.reusable_evaluations(previous, "ck", (1, 10), ["A"],
                                                           {"edges": {"A": records["A"]}})
    other = {"edges": {"A": {"config": {"edge_threshold": 0.9}}}}
    assert "estimated:edges" not in blind.reusable_evaluations(previous, "ck", (1, 10), ["A"], other)
    assert "estimated:edges" not in blind.reusable_evaluations(previous, "ck", (1, 10), ["A"])
    assert reused["true"]["images"] == [{"set": "A", "image": "x"}] and reused["true"]["cells"] == [{"set": "A"}]
    assert blind.reusable_evaluations(previous, "other", (1, 10), ["A"]) == {}
    assert blind.reusable_evaluations(previous, "ck", (1,), ["A"]) == {}
    assert blind.reusable_evaluations(previous, "ck", (1, 10), ["A", "C"]) == {}
    assert blind.reusable_evaluations(None, "ck", (1, 10), ["A"]) == {}


def test_blind_benchmark_end_to_end_on_a_tiny_rk_set(blind_workspace, capsys, tmp_path):
    """make_testsets --kernels rk on two small HR images, estimate_kernel.py (edges), blind_benchmark.py: the
    table has every assumption, the gap arithmetic is consistent with the per-image PSNRs, the files exist."""
    from mzsr_tf import testsets
    hr_dir = tmp_path / "hr" / "Tiny"
    hr_dir.mkdir(parents=True)
    for index in range(2):
        iio.imwrite(hr_dir / f"t{index}.png", metrics.to_uint8(cosine_image(np.random.default_rng(10 + index), 96, 100)))
    testsets.make_testset(str(tmp_path / "hr"), str(tmp_path / "ts"), ["rk"], log=lambda line: None)
    assert _script("estimate_kernel")(["--inputpath", str(tmp_path / "ts" / "Input" / "rk" / "Tiny"),
                                       "--savepath", str(tmp_path / "est" / "Tiny")]) == 0
    argv = ["--testsets", str(tmp_path / "ts"), "--sets", "Tiny", "--estimated", f"edges={tmp_path / 'est'}",
            "--checkpoint", str(blind_workspace / "ckpt" / "weights"), "--steps", "1", "--out", str(tmp_path / "out")]
    assert _script("blind_benchmark")(argv) == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "out" / "blind.json").read_text())
    assert results["assumptions"] == ["true", "estimated:edges", "bicubic", "g20"]
    row = results["sets"]["Tiny"]["mzsr_1"]
    per_image = {a: [r["columns"]["mzsr_1"]["psnr"] for r in results["evaluations"][a]["images"]]
                 for a in results["assumptions"]}
    assert row["mean_psnr"]["true"] == pytest.approx(np.mean(per_image["true"]))
    expected_gap = ((np.mean(per_image["estimated:edges"]) - np.mean(per_image["bicubic"]))
                    / (np.mean(per_image["true"]) - np.mean(per_image["bicubic"])))
    assert row["gap_recovered"]["edges"] == pytest.approx(expected_gap)
    assert (tmp_path / "out" / "blind.md").read_text().count("| Tiny |") == 6
    assert iio.imread(tmp_path / "out" / "kernel_errors_edges.png").ndim == 3
    # a second run reusing the first runs nothing again and gives the same table
    argv_reuse = argv[:-1] + [str(tmp_path / "again"), "--reuse", str(tmp_path / "out" / "blind.json")]
    assert _script("blind_benchmark")(argv_reuse) == 0
    assert "reused from the earlier results" in capsys.readouterr().out
    again = json.loads((tmp_path / "again" / "blind.json").read_text())
    assert again["sets"] == results["sets"]
