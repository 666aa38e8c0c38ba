"""Outputs written atomically or not at all (``mzsr_tf.atomic``), on a full disk and in read-only places.

The full-disk and read-only cases mount a small tmpfs (root in CI; skipped with a reason where ``mount``
is not permitted) and run the scripts as a user would.
"""
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import uuid

import imageio.v3 as iio
import numpy as np
import pytest

from mzsr_tf import atomic, cli
from mzsr_tf.atomic import OutputPathError, WriteError

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO = REPO / "dataset" / "demo"


@contextlib.contextmanager
def tmpfs(path: pathlib.Path, size: str, read_only: bool = False):
    """A tmpfs of ``size`` mounted at ``path`` for the block (unmounted after it, whatever happens)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or mounted.returncode}); "
                    "CI runs as root, where it can")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def _leftovers(folder: pathlib.Path):
    """Temporary or probe files left in ``folder`` (recursively)."""
    return [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def _script(name, *args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *map(str, args)],
                          capture_output=True, text=True, cwd=str(REPO))


# --------------------------------------------------------------------------- the helper

def test_a_complete_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deep" / "results.json"
    atomic.write_json(path, {"a": 1})
    atomic.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(path.parent) == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_names_the_new_one(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(WriteError) as info:
        with atomic.atomic_path(path) as temporary:
            with open(temporary, "w") as f:
                f.write("half of the new")
            raise OSError(28, "No space left on device")
    assert str(info.value) == f"cannot write {path}: No space left on device"
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]
    # other errors pass through unchanged, and still leave nothing behind
    with pytest.raises(KeyError):
        with atomic.atomic_path(tmp_path / "new.json") as temporary:
            pathlib.Path(temporary).write_text("x")
            raise KeyError("bug")
    assert os.listdir(tmp_path) == ["results.json"]


def test_files_written_together_appear_together_or_not_at_all(tmp_path):
    names = [tmp_path / "a.tfrecord", tmp_path / "a.tfrecord.json"]
    with pytest.raises(RuntimeError):
        with atomic.atomic_paths(names) as temporaries:
            pathlib.Path(temporaries[0]).write_text("records")
            raise RuntimeError("the sidecar could not be made")
    assert os.listdir(tmp_path) == []
    with atomic.atomic_paths(names) as temporaries:
        for temporary, text in zip(temporaries, ("records", "sidecar")):
            pathlib.Path(temporary).write_text(text)
    assert [p.read_text() for p in names] == ["records", "sidecar"]


def test_write_errors_become_the_callers_class():
    with pytest.raises(cli.OutputError, match="^cannot write x: disk full$"):
        with atomic.write_errors_as(cli.OutputError):
            raise WriteError("cannot write x: disk full")


def test_output_checks_create_nothing_and_name_the_obstacle(tmp_path):
    (tmp_path / "taken").write_text("a file")
    assert atomic.check_output_folder(tmp_path / "new" / "deeper", "--savepath") == str(tmp_path / "new" / "deeper")
    assert atomic.check_output_file(tmp_path / "new" / "curve.json", "--out")
    assert os.listdir(tmp_path) == ["taken"]  # neither folders nor probe files are left
    with pytest.raises(OutputPathError, match=rf"^--savepath {tmp_path / 'taken'}: is a file, not a folder$"):
        atomic.check_output_folder(tmp_path / "taken", "--savepath")
    with pytest.raises(OutputPathError, match=rf"^--png .*x\.png: {tmp_path / 'taken'} is a file, not a folder$"):
        atomic.check_output_file(tmp_path / "taken" / "sub" / "x.png", "--png")
    with pytest.raises(OutputPathError, match=r"^--out .*: is a folder, not a file$"):
        atomic.check_output_file(tmp_path, "--out")


# --------------------------------------------------------------------------- a full disk

def test_a_meta_test_on_a_full_disk_stops_with_one_line_and_leaves_only_complete_images(tmp_path):
    """The demo's SR images are about 90-115 kB each: a 150 kB disk takes the first and fills up on the second."""
    mount = tmp_path / "small"
    with tmpfs(mount, "150k"):
        done = _script("main.py", "--savepath", mount)
        out_dir = mount / "01"
        left = sorted(out_dir.iterdir()) if out_dir.exists() else []
        leftovers = _leftovers(mount)
        images = {p.name: np.asarray(iio.imread(p)) for p in left if p.suffix == ".png"}
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: cannot write {out_dir}/") and "No space left on device" in done.stderr
    assert "Traceback" not in done.stderr
    assert leftovers == []
    assert "results.json" not in [p.name for p in left]  # not every image was written: no results
    assert images, "the disk should have taken at least one image before filling up"
    for name, sr in images.items():  # every image left is complete: decodable, of the GT's size
        gt = iio.imread(DEMO / "GT" / name)
        assert sr.shape == gt.shape and sr.dtype == np.uint8
    failed = done.stderr.split(f"{out_dir}/")[1].split(":")[0]
    assert failed.endswith(".png") and failed not in images


@pytest.mark.parametrize("extension", [".tfrecord", ".h5"])
def test_records_on_a_full_disk_leave_no_partial_file(tmp_path, extension):
    mount = tmp_path / "small"
    with tmpfs(mount, "256k"):
        done = _script("generate_tfrecord.py", "--labelpath", DEMO / "GT", "--tfrecord", mount / f"train{extension}",
                       "--quiet")
        left = sorted(p.name for p in mount.iterdir())
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: cannot write {mount / ('train' + extension)}: ")
    assert left == []  # no partial record file, no sidecar, no temporary file


def test_test_sets_on_a_full_disk_leave_only_complete_images(tmp_path):
    """make_testsets writes every PNG, kernel.mat and the manifest atomically: a full disk stops it with one line."""
    mount = tmp_path / "small"
    with tmpfs(mount, "200k"):
        done = _script("make_testsets.py", "--hr", DEMO / "GT", "--out", mount, "--kernels", "g20", "gani")
        leftovers = _leftovers(mount)
        pngs = {p: np.asarray(iio.imread(p)) for p in mount.rglob("*.png")}
        manifest_written = (mount / "testset.json").exists()
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: cannot write {mount}/") and "No space left on device" in done.stderr
    assert leftovers == [] and not manifest_written
    assert pngs, "the disk should have taken some images before filling up"
    for path, image in pngs.items():  # every image left is complete: the GT's size (GT) or half of it (LR)
        gt = iio.imread(DEMO / "GT" / path.name)
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert image.shape[:2] in (gt.shape[:2], (gt.shape[0] // 2, gt.shape[1] // 2)), (path, image.shape)


# --------------------------------------------------------------------------- read-only places, refused first

@pytest.fixture(scope="module")
def read_only(tmp_path_factory):
    mount = tmp_path_factory.mktemp("ro") / "mount"
    with tmpfs(mount, "64k", read_only=True):
        yield mount


@pytest.fixture(scope="module")
def testset(tmp_path_factory):
    """A one-image test set for scripts/evaluate.py."""
    from mzsr_tf import testsets

    root = tmp_path_factory.mktemp("testset")
    (root / "hr" / "Set5").mkdir(parents=True)
    iio.imwrite(root / "hr" / "Set5" / "a.png", iio.imread(DEMO / "GT" / "coffee.png")[:64, :64])
    testsets.make_testset(str(root / "hr"), str(root / "ts"), ["g20"], log=lambda s: None)
    return root / "ts"


def _read_only_cases(read_only, testset, missing):
    """(script function, argv, flag) per script: the output in ``read_only``, the other paths valid or
    ``missing`` (never reached: the output is refused first)."""
    folder = f"x={missing},{missing},{missing}"
    return {
        "main": (cli.main_script, ["--savepath", read_only / "out", "--checkpoint", missing], "--savepath"),
        "evaluate": (cli.evaluate_script, ["--testsets", testset, "--kernels", "g20", "--out", read_only / "eval",
                                           "--checkpoint", missing], "--out"),
        "learning_curve_out": (cli.learning_curve_script, ["--run", missing, "--folder", folder,
                                                            "--out", read_only / "curve.json"], "--out"),
        "learning_curve_png": (cli.learning_curve_script, ["--run", missing, "--folder", folder,
                                                            "--out", missing / "curve.json",
                                                            "--png", read_only / "curve.png"], "--png"),
        "generate_tfrecord": (cli.generate_tfrecord_script, ["--labelpath", missing, "--tfrecord",
                                                             read_only / "train"], "--tfrecord"),
        "make_testsets": (cli.make_testsets_script, ["--hr", missing, "--out", read_only / "ts"], "--out"),
    }


@pytest.mark.parametrize("case", ["main", "evaluate", "learning_curve_out", "learning_curve_png",
                                  "generate_tfrecord", "make_testsets"])
def test_a_read_only_output_place_is_refused_before_any_work(read_only, testset, tmp_path, capsys, case):
    missing = tmp_path / f"missing-{uuid.uuid4().hex[:6]}"
    script, argv, flag = _read_only_cases(read_only, testset, missing)[case]
    code = script([str(arg) for arg in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {flag} {read_only}") and err.count("\n") == 1, err
    assert f"cannot write in {read_only} (Read-only file system)" in err
    assert str(missing) not in err  # refused before the (missing) inputs or checkpoint were even looked at
