"""Every script under the same conventions (issue 37): bad input is one ``error:`` line naming the flag or file
(exit 2), a fault one line (exit 1), checked before anything is created or a checkpoint loads."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from mzsr_tf import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


# --------------------------------------------------------------------------- flags checked before TensorFlow

@pytest.mark.parametrize("flags, message", [
    (["--scale", "0"], "error: --scale 0.0: AdaptationConfig.scale must be > 1 and <= 16 (a number), got 0.0"),
    (["--noise", "-1"], "error: --noise -1.0: AdaptationConfig.noise_std must be >= 0 and <= 1 (a number), "
                        "got -1.0"),
])
def test_scale_and_noise_are_refused_before_tensorflow_is_imported(tmp_path, flags, message):
    script = ("import sys\nfrom mzsr_tf import cli\n"
              f"code = cli.main_script({flags + ['--savepath', str(tmp_path / 'out')]!r})\n"
              "print(code, 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert done.stdout == "2 False\n", done.stdout + done.stderr
    assert _one_error_line(done.stderr) == message
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- input folders and names

def _write_images(folder: pathlib.Path, count: int, shape=(32, 32, 3)):
    import imageio.v3 as iio
    import numpy as np
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        iio.imwrite(folder / f"im{index}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return folder


@pytest.mark.parametrize("case, message", [
    ("missing", "error: --hr folder {hr} does not exist"),
    ("empty", "error: --hr folder {hr} holds no images (.png, .bmp, .jpg, .jpeg, .tif, .tiff)"),
    ("few", "error: --hr folder {hr} holds 2 image(s): --fit 80 needs at least 81 (the fit's and at least one "
            "held out)"),
])
def test_calibrate_edge_kernel_names_hr(tmp_path, capsys, case, message):
    hr = tmp_path / case
    if case == "empty":
        hr.mkdir()
    elif case == "few":
        _write_images(hr, 2)
    before = sorted(tmp_path.rglob("*"))
    code = cli.calibrate_edge_kernel_script(["--hr", str(hr)])
    assert code == 2
    assert _one_error_line(capsys.readouterr().err) == message.format(hr=hr)
    assert sorted(tmp_path.rglob("*")) == before


def test_blind_benchmark_refuses_an_estimator_name_given_twice(tmp_path, capsys):
    code = cli.blind_benchmark_script(["--testsets", str(tmp_path), "--sets", "Set5", "--estimated",
                                       f"edges={tmp_path / 'A'}", f"edges={tmp_path / 'B'}",
                                       "--out", str(tmp_path / "out")])
    assert code == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: --estimated edges={tmp_path / 'B'}: the name edges is given twice (also edges={tmp_path / 'A'}); "
        "each estimator's rows need a name of their own")
    assert os.listdir(tmp_path) == []


def _meta_test_refuses(tmp_path, capsys, inputpath) -> str:
    code = cli.main_script(["--inputpath", str(inputpath), "--gtpath", "", "--kernelpath", "",
                            "--checkpoint", str(tmp_path / "no_checkpoint"), "--savepath", str(tmp_path / "out")])
    assert code == 2
    assert not (tmp_path / "out").exists()
    return _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("content, reason", [
    (b"not a png", "not a decodable image (damaged, or not a PNG, BMP, JPEG or TIFF file)"),
    (b"", "empty file"),
])
def test_a_png_that_is_not_an_image_gets_the_one_decoder_text(tmp_path, capsys, content, reason):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(content)
    line = _meta_test_refuses(tmp_path, capsys, folder)
    assert line == f"error: cannot read image {folder / 'a.png'}: {reason}"
    assert "`" not in line


def test_an_inputpath_that_is_a_file_is_called_a_file(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"x")
    line = _meta_test_refuses(tmp_path, capsys, tmp_path / "a.png")
    assert line == f"error: input folder {tmp_path / 'a.png'} is a file, not a folder"


# --------------------------------------------------------------------------- nothing created before validation

@pytest.mark.parametrize("kernels, side", [("g20", 2), ("g20 g20x4", 4)])
def test_make_testsets_refuses_a_tiny_hr_image_before_writing_anything(tmp_path, capsys, kernels, side):
    """A 1x1 HR image (and a 3x3 one when x4 is asked for) was found only while writing, after kernel.mat and
    empty folders."""
    import imageio.v3 as iio
    import numpy as np
    hr = _write_images(tmp_path / "HR" / "Set1", 1)
    tiny = side - 1
    iio.imwrite(hr / "tiny.png", np.full((tiny, tiny, 3), 90, np.uint8))
    code = cli.make_testsets_script(["--hr", str(hr), "--out", str(tmp_path / "out"), "--kernels", *kernels.split()])
    assert code == 2
    scale = "x4" if side == 4 else "x2"
    kernel = "g20x4" if side == 4 else "g20"
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: HR image {hr / 'tiny.png'} ({tiny}x{tiny}) is too small for kernel {kernel} ({scale}): it needs "
        f"at least {side} pixels a side")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- Ctrl-C during a meta-test

@pytest.fixture(scope="module")
def tiny_workspace(tmp_path_factory):
    """Three 24x24 inputs and a random checkpoint of the test's own (as tests/test_main.py's workspace)."""
    import tensorflow as tf
    from mzsr_tf import checkpoints
    from mzsr_tf.model import MZSRNet
    root = tmp_path_factory.mktemp("interrupt")
    _write_images(root / "LR", 3, (24, 24, 3))
    model = MZSRNet(seed=1)
    model(tf.zeros([1, 8, 8, 3]))
    checkpoints.export_weights(model, str(root / "ckpt" / "weights"))
    return root


def test_remove_temporaries_removes_the_writes_under_way_only(tmp_path):
    from mzsr_tf import atomic
    atomic.write_text(tmp_path / "done.txt", "complete")
    with pytest.raises(atomic.WriteError):
        with atomic.atomic_path(tmp_path / "half.txt") as temporary:
            pathlib.Path(temporary).write_text("half")
            atomic.remove_temporaries()  # as a signal handler would, just before the process ends
    assert os.listdir(tmp_path) == ["done.txt"]


def test_ctrl_c_ends_a_meta_test_at_once_with_one_line_and_only_complete_outputs(tiny_workspace, tmp_path):
    """SIGINT while an image's compiled adaptation runs (1000 steps): exit 130 within 10 s, one stderr line,
    the images already written complete, no results.json, no temporary file."""
    import imageio.v3 as iio
    import signal
    import time
    savepath = tmp_path / "out"
    command = [sys.executable, str(REPO / "scripts" / "main.py"), "--inputpath", str(tiny_workspace / "LR"),
               "--gtpath", "", "--kernelpath", "", "--checkpoint", str(tiny_workspace / "ckpt" / "weights"),
               "--num", "1000", "--savepath", str(savepath)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
    try:
        for line in process.stdout:  # the first image's line: the second image's adaptation is under way
            if line.startswith("[1/3]"):
                break
        else:
            pytest.fail(f"main.py ended before its first image: {process.stderr.read()}")
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = process.communicate(timeout=10)
        seconds = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and seconds < 10
    assert _one_error_line(err) == ("error: SIGINT received: the meta-test stopped; the files it wrote are complete, "
                                    "nothing partial is left")
    written = sorted(os.listdir(savepath / "1000"))
    assert written[0] == "im0.png" and "results.json" not in written
    assert all(not name.startswith(".") and ".tmp" not in name for name in written), written
    for name in written:
        assert iio.imread(savepath / "1000" / name).shape == (48, 48, 3)


def test_a_savepath_with_dotdot_after_a_missing_folder_is_refused_up_front(tiny_workspace, tmp_path, capsys):
    """out/missing/../base: the system cannot follow '..' out of a folder that does not exist; the check walked
    the normalised path, passed, and the run failed at its first write (exit 1)."""
    (tmp_path / "out").mkdir()
    savepath = f"{tmp_path / 'out'}/missing/../base"
    code = cli.main_script(["--inputpath", str(tiny_workspace / "LR"), "--gtpath", "", "--kernelpath", "",
                            "--checkpoint", str(tmp_path / "no_checkpoint"), "--savepath", savepath])
    assert code == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: --savepath {savepath}/01: {tmp_path / 'out' / 'missing'} does not exist, so the '..' after it "
        "cannot be followed")
    assert os.listdir(tmp_path / "out") == []


# --------------------------------------------------------------------------- convert_checkpoint.py outputs

def _convert_into_tmpfs(source, tmp_path, flag, size, read_only=False):
    """convert_checkpoint.py SOURCE FLAG MOUNT/out on a small tmpfs: (exit code, MOUNT, what is left in it)."""
    from test_outputs import tmpfs
    with tmpfs(tmp_path / "mount", size, read_only=read_only) as mount:
        code = cli.convert_checkpoint_script([str(source), flag, str(mount / "out")])
        return code, mount, os.listdir(mount)


def test_convert_checkpoint_refuses_a_read_only_saved_model_target_before_loading(tiny_workspace, tmp_path, capsys,
                                                                                   monkeypatch):
    from mzsr_tf import checkpoints
    monkeypatch.setattr(checkpoints, "load_weights", lambda *a, **k: pytest.fail("loaded before the check"))
    code, mount, left = _convert_into_tmpfs(tiny_workspace / "ckpt" / "weights", tmp_path, "--saved-model", "64k",
                                            read_only=True)
    assert code == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: --saved-model {mount / 'out'}: cannot write in {mount} (Read-only file system)")
    assert left == []


def test_convert_checkpoint_on_a_full_disk_names_weights_without_tensorflow_internals(tiny_workspace, tmp_path,
                                                                                       capsys):
    code, mount, left = _convert_into_tmpfs(tiny_workspace / "ckpt" / "weights", tmp_path, "--weights", "16k")
    assert code == 1
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: cannot write the converted checkpoint: --weights {mount / 'out'}: No space left on device")
    assert left == []


# --------------------------------------------------------------------------- training: records and run folder first

TRAINING_SCRIPTS = [(cli.main_script, ["--train"]), (cli.pretrain_script, [])]


@pytest.mark.parametrize("script, flags", TRAINING_SCRIPTS)
def test_training_checks_the_records_before_making_the_run_folder(tmp_path, capsys, script, flags):
    (tmp_path / "bad.tfrecord").write_bytes(b"")  # exists, holds no records
    for records, reason in ((tmp_path / "missing.tfrecord", "record file not found"),
                            (tmp_path / "bad.tfrecord", "contains no records")):
        code = script(flags + ["--tfrecord", str(records), "--checkpoint-dir", str(tmp_path / "runs"),
                               "--transfer", "none"][:None if flags else -2])
        assert code == 2
        line = _one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: {records}") and reason in line, line
        assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("script, flags", TRAINING_SCRIPTS)
def test_training_into_a_read_only_checkpoint_dir_names_the_flag(tmp_path, capsys, script, flags):
    from test_outputs import tmpfs
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as mount:
        code = script(flags + ["--tfrecord", str(tmp_path / "missing.tfrecord"), "--checkpoint-dir", str(mount)])
    assert code == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: --checkpoint-dir {mount / 'Model0'}: cannot write in {mount} (Read-only file system)")


# --------------------------------------------------------------------------- estimate_kernel.py on a full disk

@pytest.mark.parametrize("size, failing", [("20k", "chelsea_kernel.png"), ("48k", "estimation.json")])
def test_estimate_kernel_on_a_full_disk_leaves_no_kernel_without_its_figure_or_record(tmp_path, capsys, size,
                                                                                       failing):
    """The demo's three inputs (sorted: astronaut, chelsea, coffee), each a 4 kB .mat and a 12 kB figure on tmpfs:
    20k takes the first pair and chelsea's kernel, 48k every pair but not estimation.json."""
    from test_outputs import tmpfs
    with tmpfs(tmp_path / "small", size) as mount:
        code = cli.estimate_kernel_script(["--inputpath", str(REPO / "dataset" / "demo" / "Input"),
                                           "--savepath", str(mount)])
        left = os.listdir(mount)
    assert code == 1
    assert _one_error_line(capsys.readouterr().err) == f"error: cannot write {mount / failing}: No space left on device"
    assert left == []


# --------------------------------------------------------------------------- an even-sized kernel

def test_an_even_sized_kernel_is_accepted_with_a_warning_saying_where_its_centre_falls(tiny_workspace, tmp_path,
                                                                                       capsys):
    import numpy as np
    from mzsr_tf import kernels
    kernels.save_kernel(tmp_path / "k4.mat", np.full((4, 4), 1 / 16))
    code = cli.main_script(["--inputpath", str(tiny_workspace / "LR"), "--gtpath", "",
                            "--kernelpath", str(tmp_path / "k4.mat"), "--num", "1",
                            "--checkpoint", str(tiny_workspace / "ckpt" / "weights"),
                            "--savepath", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    warnings = [line for line in captured.out.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {tmp_path / 'k4.mat'}: the kernel is 4x4, an even size: its centre falls between "
                        "pixels, at row 1.5, column 1.5 (0 = its first), so the son is shifted by half a pixel "
                        "against the input"]
    assert sorted(os.listdir(tmp_path / "out" / "01")) == ["im0.png", "im1.png", "im2.png", "results.json"]
    assert kernels.even_size_warning(np.ones((5, 5)) / 25, "odd") is None
