"""meta_test.run_folder with per-image kernels: a kernel folder gives each image what its kernel alone gives,
and a missing kernel stops the run before anything is written."""
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import degradation, kernels, metrics
from mzsr_tf.config import ModelConfig, preset_for_model
from mzsr_tf.kernels import KernelError, KernelSource
from mzsr_tf.meta_test import MetaTester, read_pair, run_folder
from mzsr_tf.model import MZSRNet
from synthetic import cosine_image

# two kernels far apart, so that a mix-up would change the result
KERNELS = {"a": kernels.isotropic_gaussian(9, 2.5), "b": kernels.anisotropic_gaussian(7, 0.4, 1.2, 0.3)}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """GT images, their LR made each with its own kernel, the kernel folder, and a small meta-tester."""
    root = tmp_path_factory.mktemp("per_image_kernels")
    rng = np.random.default_rng(7)
    for sub in ("GT", "LR", "kernels"):
        (root / sub).mkdir()
    for (name, kernel), shape in zip(KERNELS.items(), [(40, 36), (32, 44)]):
        gt = cosine_image(rng, *shape)
        iio.imwrite(root / "GT" / f"{name}.png", metrics.to_uint8(gt))
        iio.imwrite(root / "LR" / f"{name}.png", metrics.to_uint8(degradation.degrade(gt, kernel, 2.0)))
        kernels.save_kernel(root / "kernels" / f"{name}.mat", kernel)
    model = MZSRNet(ModelConfig(width=16), seed=5)
    model(tf.zeros([1, 8, 8, 3]))
    tester = MetaTester(model.trainable_variables, preset_for_model(0).adaptation_config(num_steps=2))
    return root, tester


def _run(workspace, kernel_source, out):
    root, tester = workspace
    return run_folder(tester, str(root / "LR"), str(root / out), kernel_source, gt_dir=str(root / "GT"),
                      log=lambda line: None)


def test_kernel_folder_equals_each_kernel_given_alone(workspace):
    root, tester = workspace
    summary = _run(workspace, KernelSource.from_folder(root / "kernels"), "folder")
    records = {r["name"]: r for r in summary["images"]}
    assert summary["kernel"] == str(root / "kernels")
    for index, (name, kernel) in enumerate(KERNELS.items()):
        kernel_file = str(root / "kernels" / f"{name}.mat")
        assert records[name]["kernel"] == kernel_file
        # the same image in a run where every input gets this one kernel file
        alone = {r["name"]: r for r in _run(workspace, KernelSource.from_file(kernel_file), f"only_{name}")["images"]}
        for key in ("initial_psnr", "final_psnr", "final_ssim", "son_losses"):
            assert records[name][key] == alone[name][key], key
        # and the meta-test of that image called directly with the kernel array, not through run_folder
        lr, gt = read_pair(str(root / "LR" / f"{name}.png"), str(root / "GT" / f"{name}.png"), 2)
        direct = tester.adapt(lr, kernel, output_shape=gt.shape[:2], seed=(index, 0))
        written = iio.imread(root / "folder" / "02" / f"{name}.png")
        np.testing.assert_array_equal(written, metrics.to_uint8(direct.sr))
        np.testing.assert_allclose(records[name]["son_losses"], direct.son_losses, rtol=1e-6)
        # the other image's kernel gives another result: the comparison above can fail
        other = next(k for n, k in KERNELS.items() if n != name)
        swapped = tester.adapt(lr, other, output_shape=gt.shape[:2])
        assert np.abs(metrics.to_uint8(swapped.sr).astype(int) - written).max() > 0
    saved = json.loads((root / "folder" / "02" / "results.json").read_text())
    assert [r["kernel"] for r in saved["images"]] == [str(root / "kernels" / f"{n}.mat") for n in KERNELS]


def test_missing_kernel_stops_the_run_naming_the_image_and_folder(workspace, tmp_path):
    root, _ = workspace
    partial = tmp_path / "kernels"
    partial.mkdir()
    kernels.save_kernel(partial / "a.mat", KERNELS["a"])
    with pytest.raises(KernelError) as info:
        _run(workspace, KernelSource.from_folder(partial), tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message
    assert message == f"no kernel for image {root / 'LR' / 'b.png'} in kernel folder {partial} (expected b.mat)"
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_bicubic_source_records_cubic(workspace):
    summary = _run(workspace, KernelSource.bicubic(), "cubic")
    assert summary["kernel"] == "cubic"
    assert [r["kernel"] for r in summary["images"]] == ["cubic", "cubic"]


def test_a_failed_write_leaves_complete_images_only_and_no_results(workspace, tmp_path):
    """b.png cannot be written (a folder holds its name): a.png is complete, nothing else is left."""
    from mzsr_tf.atomic import WriteError

    root, _ = workspace
    (tmp_path / "out" / "02" / "b.png").mkdir(parents=True)
    with pytest.raises(WriteError) as info:
        _run(workspace, KernelSource.from_folder(root / "kernels"), tmp_path / "out")
    assert str(info.value).startswith(f"cannot write {tmp_path / 'out' / '02' / 'b.png'}: ")
    assert sorted(p.name for p in (tmp_path / "out" / "02").iterdir()) == ["a.png", "b.png"]
    assert iio.imread(tmp_path / "out" / "02" / "a.png").shape == (40, 36, 3)


def test_an_output_folder_that_is_a_file_is_refused_before_any_adaptation(workspace, tmp_path, monkeypatch):
    from mzsr_tf.atomic import OutputPathError

    root, tester = workspace
    monkeypatch.setattr(tester, "adapt", lambda *args, **kwargs: pytest.fail("adapted before the check"))
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputPathError, match=rf"^output folder {tmp_path / 'out' / '02'}: {tmp_path / 'out'} "
                                              r"is a file, not a folder$"):
        _run(workspace, KernelSource.from_folder(root / "kernels"), tmp_path / "out")
