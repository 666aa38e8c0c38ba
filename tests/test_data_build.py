"""mzsr_tf.data.build and scripts/generate_tfrecord.py: folders of images -> records + sidecar."""
import importlib.util
import json
import pathlib
import re

import imageio.v3 as iio
import numpy as np
import pytest

from mzsr_tf.data import build as B
from mzsr_tf.data.images import ImageReadError
from mzsr_tf.data.records import read_patch_pairs, read_patches
from mzsr_tf.imresize import imresize

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "generate_tfrecord.py"


def _noise(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def hr_folder(tmp_path):
    """Two images: 200x330 (6 grid positions, one flat -> 5 kept) and 150x100 (2 positions)."""
    folder = tmp_path / "hr"
    folder.mkdir()
    first = _noise(200, 330, seed=1)
    first[0:64, 120:184] = 90
    iio.imwrite(folder / "a.png", first)
    iio.imwrite(folder / "b.bmp", _noise(150, 100, seed=2))
    return folder


def _sorted_bytes(patches):
    return sorted(p.tobytes() for p in patches)


def _expected_mzsr_patches(folder):
    """The recipe by hand: the kept grid patches of each image in all 8 flips/rotations."""
    a, b = iio.imread(folder / "a.png"), iio.imread(folder / "b.bmp")
    kept = [a[i:i + 64, j:j + 64] for i, j in [(0, 0), (0, 240), (120, 0), (120, 120), (120, 240)]]
    kept += [b[0:64, 0:64]]  # 150x100: rows 0 (last start 86 < 120), cols 0 (last start 36)
    out = []
    for patch in kept:
        for mode in range(8):
            turned = np.rot90(patch, mode // 2)
            out.append(np.flipud(turned) if mode % 2 else turned)
    return out


def test_mzsr_records_hold_the_recipe(tmp_path, hr_folder):
    summary = B.build_records(hr_folder, tmp_path / "out" / "train", B.PatchRecipe(seed=3))
    assert summary["num_kept_patches"] == 6 and summary["num_records"] == 48
    assert summary["files"] == [{"file": "train.tfrecord", "count": 48}]
    sidecar = json.loads((tmp_path / "out" / "train.tfrecord.json").read_text())
    assert sidecar["recipe"] == {"mode": "mzsr", "patch_size": 64, "stride": 120, "scale": 2,
                                 "seed": 3, "gradient_threshold": -6.0}
    assert sidecar["shapes"] == {"label": [64, 64, 3]} and sidecar["num_images"] == 2
    ours = np.stack([p.numpy() for p in read_patches(tmp_path / "out" / "train.tfrecord")])
    assert _sorted_bytes(ours) == _sorted_bytes(_expected_mzsr_patches(hr_folder))


def test_shuffle_is_seeded(tmp_path, hr_folder):
    def build(name, seed):
        B.build_records(hr_folder, tmp_path / name, B.PatchRecipe(seed=seed))
        return np.stack([p.numpy() for p in read_patches(tmp_path / f"{name}.tfrecord")])

    first, again, other = build("a", 0), build("b", 0), build("c", 1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_hdf5_and_tfrecord_builds_are_identical(tmp_path, hr_folder):
    B.build_records(hr_folder, tmp_path / "x", B.PatchRecipe(), num_shards=2)
    B.build_records(hr_folder, tmp_path / "x.h5", B.PatchRecipe())
    from_tfrecord = np.stack([p.numpy() for p in read_patches(tmp_path / "x.tfrecord")])
    from_hdf5 = np.stack([p.numpy() for p in read_patches(tmp_path / "x.h5")])
    np.testing.assert_array_equal(from_tfrecord, from_hdf5)


def test_pretrain_pairs(tmp_path, hr_folder):
    summary = B.build_records(hr_folder, tmp_path / "pre", B.PatchRecipe(mode="pretrain", stride=60))
    # 96x96 labels, stride 60: a.png 200x330 -> rows 0, 60 x cols 0, 60, 120, 180 = 8 (the flat
    # 64x64 block covers no whole label, all are noise); b.bmp 150x100 -> rows 0 x cols 0 = 1.
    assert summary["num_records"] == 9 and summary["augmentations"] == 1
    assert summary["shapes"] == {"label": [96, 96, 3], "image": [48, 48, 3]}
    a = iio.imread(hr_folder / "a.png")
    lr_a = np.clip(np.round(imresize(a.astype(np.float64), scale=0.5)), 0, 255).astype(np.uint8)
    pairs = {label.numpy().tobytes(): image.numpy()
             for label, image in read_patch_pairs(tmp_path / "pre.tfrecord")}
    assert len(pairs) == 9
    for i, j in [(0, 0), (60, 120), (60, 180)]:
        np.testing.assert_array_equal(pairs[a[i:i + 96, j:j + 96].tobytes()],
                                      lr_a[i // 2:i // 2 + 48, j // 2:j // 2 + 48])


def test_output_names():
    assert B.output_path("out/train_SR_MZSR") == "out/train_SR_MZSR.tfrecord"
    assert B.output_path("x.tfrecord") == "x.tfrecord"
    assert B.output_path("x", "hdf5") == "x.h5"
    assert B.output_path("x.hdf5") == "x.hdf5"
    with pytest.raises(ValueError, match=r"x\.h5: the extension does not match the format 'tfrecord'"):
        B.output_path("x.h5", "tfrecord")


def test_recipe_defaults_and_checks():
    assert B.PatchRecipe().patch_size == 64
    assert B.PatchRecipe(mode="pretrain", scale=3).patch_size == 144
    with pytest.raises(ValueError, match="mode must be one of"):
        B.PatchRecipe(mode="other")
    with pytest.raises(ValueError, match="scale 3 and patch size 64"):
        B.PatchRecipe(mode="pretrain", scale=3, patch_size=64)


# --------------------------------------------------------------------------- bad input

def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no images found"):
        B.build_records(tmp_path / "empty", tmp_path / "x", B.PatchRecipe())


def test_unreadable_image(tmp_path, hr_folder):
    (hr_folder / "c.png").write_bytes(b"\x89PNG but broken")
    with pytest.raises(ImageReadError, match=r"c\.png: cannot read image"):
        B.build_records(hr_folder, tmp_path / "x", B.PatchRecipe())


def test_image_smaller_than_a_patch(tmp_path, hr_folder):
    iio.imwrite(hr_folder / "small.png", _noise(40, 300, seed=4))
    with pytest.raises(ValueError, match=r"small\.png: image is 40x300, smaller than one 64x64 patch"):
        B.build_records(hr_folder, tmp_path / "x", B.PatchRecipe())
    summary = B.build_records(hr_folder, tmp_path / "x", B.PatchRecipe(), skip_small=True)
    assert summary["num_records"] == 48 and summary["skipped_images"][0].endswith("small.png")


def test_no_patch_passes_the_filter(tmp_path):
    (tmp_path / "flat").mkdir()
    iio.imwrite(tmp_path / "flat" / "f.png", np.full((70, 70, 3), 5, np.uint8))
    with pytest.raises(ValueError, match="no patch of the 1 images .* passed the gradient filter"):
        B.build_records(tmp_path / "flat", tmp_path / "x", B.PatchRecipe())


# --------------------------------------------------------------------------- the script

def _script():
    spec = importlib.util.spec_from_file_location("generate_tfrecord", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_writes_records_and_reports(tmp_path, hr_folder, capsys):
    code = _script().main(["--labelpath", str(hr_folder), "--tfrecord", str(tmp_path / "t"),
                           "--format", "hdf5", "--shards", "2", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Num of patches: 48 from 2 images" in out
    assert "[*] Image 1/2: a.png 200x330, 5 patches kept" in out
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".h5") == [
        "t-00000-of-00002.h5", "t-00001-of-00002.h5"]
    assert json.loads((tmp_path / "t.h5.json").read_text())["format"] == "hdf5"


@pytest.mark.parametrize("setup, message", [
    (lambda folder: None, "no images found"),
    (lambda folder: (folder / "bad.png").write_bytes(b"garbage"), r"bad\.png: cannot read image"),
    (lambda folder: iio.imwrite(folder / "s.png", np.zeros((10, 10, 3), np.uint8)),
     r"s\.png: image is 10x10, smaller than one 64x64 patch"),
])
def test_script_bad_input_exits_2_with_one_line(tmp_path, capsys, setup, message):
    folder = tmp_path / "in"
    folder.mkdir()
    setup(folder)
    code = _script().main(["--labelpath", str(folder), "--tfrecord", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err)


def test_real_training_images_match_the_recipe(tmp_path, shared_dir):
    """Two of the shared training images; the count is the MainSR loop written out here."""
    sources = [shared_dir / "datasets" / "train" / "T91" / "t1.bmp",
               shared_dir / "datasets" / "train" / "BSD200" / "100075.png"]
    folder = tmp_path / "real"
    folder.mkdir()
    expected = 0
    for source in sources:
        (folder / source.name).write_bytes(source.read_bytes())
        image = iio.imread(source)
        for i in range(0, image.shape[0] - 64 + 1, 120):
            for j in range(0, image.shape[1] - 64 + 1, 120):
                x = image[i:i + 64, j:j + 64].astype(np.float64) / 255.
                score = np.mean(((x[:-1, :-1] - x[1:, :-1]) ** 2 + (x[:-1, :-1] - x[:-1, 1:]) ** 2))
                expected += 8 * int(np.log(score + 1e-10) >= -6.0)
    summary = B.build_records(folder, tmp_path / "real", B.PatchRecipe())
    assert summary["num_records"] == expected > 0


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_image_is_read(tmp_path, capsys):
    from mzsr_tf.atomic import OutputPathError

    (tmp_path / "taken").write_text("a file")
    # the label folder does not even exist: the output is checked first
    with pytest.raises(OutputPathError, match=rf"^record file {tmp_path / 'taken' / 'x.tfrecord'}: "
                                              rf"{tmp_path / 'taken'} is a file, not a folder$"):
        B.build_records(tmp_path / "nowhere", tmp_path / "taken" / "x", B.PatchRecipe())
    code = _script().main(["--labelpath", str(tmp_path / "nowhere"), "--tfrecord", str(tmp_path / "taken" / "x")])
    assert code == 2
    assert capsys.readouterr().err == (f"error: --tfrecord {tmp_path / 'taken' / 'x.tfrecord'}: "
                                       f"{tmp_path / 'taken'} is a file, not a folder\n")


def test_records_and_sidecar_appear_together_with_nothing_else(tmp_path, hr_folder):
    summary = B.build_records(hr_folder, tmp_path / "out" / "t", B.PatchRecipe(), fmt="hdf5", num_shards=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "t-00000-of-00002.h5", "t-00001-of-00002.h5", "t.h5.json"]
    assert json.loads((tmp_path / "out" / "t.h5.json").read_text()) == summary
