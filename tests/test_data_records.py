"""mzsr_tf.data.records: the reference's TFRecord schema, HDF5, shards, and damaged files."""
import json
import pathlib

import h5py
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf.data import records as R

SHAPE = (8, 8, 3)


def _patches(n, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


def _write_by_hand(path, labels, images=None):
    """Records as MainSR's ``write_to_tfrecord``: a ``label`` (and ``image``) BytesList of raw bytes."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for k, label in enumerate(labels):
            feature = {"label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.tobytes()]))}
            if images is not None:
                feature["image"] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[images[k].tobytes()]))
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


def _read_all(dataset):
    return np.stack([x.numpy() for x in dataset])


def _write(path, arrays, fmt, num_shards=1, batch=3):
    total = len(next(iter(arrays.values())))
    batches = ({k: v[s:s + batch] for k, v in arrays.items()} for s in range(0, total, batch))
    return R.write_records(path, batches, total, fmt, num_shards)


def test_hand_written_reference_tfrecord_loads(tmp_path):
    labels = _patches(5)
    _write_by_hand(tmp_path / "ref.tfrecord", labels)
    np.testing.assert_array_equal(_read_all(R.read_patches(tmp_path / "ref.tfrecord", SHAPE)), labels)


def test_hand_written_pretrain_tfrecord_loads(tmp_path):
    labels, images = _patches(4), _patches(4, (4, 4, 3), seed=1)
    _write_by_hand(tmp_path / "pre.tfrecord", labels, images)
    pairs = list(R.read_patch_pairs(tmp_path / "pre.tfrecord", SHAPE, (4, 4, 3)))
    np.testing.assert_array_equal(np.stack([p[0] for p in pairs]), labels)
    np.testing.assert_array_equal(np.stack([p[1] for p in pairs]), images)


def test_written_tfrecord_is_the_reference_bytes(tmp_path):
    labels = _patches(3)
    _write_by_hand(tmp_path / "ref.tfrecord", labels)
    _write(tmp_path / "ours.tfrecord", {"label": labels}, "tfrecord")
    assert (tmp_path / "ours.tfrecord").read_bytes() == (tmp_path / "ref.tfrecord").read_bytes()


@pytest.mark.parametrize("num_shards", [1, 3])
def test_tfrecord_and_hdf5_round_trips_are_identical(tmp_path, num_shards):
    labels, images = _patches(10), _patches(10, (4, 4, 3), seed=2)
    arrays = {"label": labels, "image": images}
    for fmt, name in [("tfrecord", "x.tfrecord"), ("hdf5", "x.h5")]:
        shards = _write(tmp_path / name, arrays, fmt, num_shards)
        assert [s.count for s in shards] == ([10] if num_shards == 1 else [3, 3, 4])
        pairs = list(R.read_patch_pairs(tmp_path / name, SHAPE, (4, 4, 3)))
        np.testing.assert_array_equal(np.stack([p[0] for p in pairs]), labels)
        np.testing.assert_array_equal(np.stack([p[1] for p in pairs]), images)


def test_shard_names_and_ways_to_name_them(tmp_path):
    labels = _patches(7)
    shards = _write(tmp_path / "s.tfrecord", {"label": labels}, "tfrecord", num_shards=2)
    assert [s.file.split("/")[-1] for s in shards] == ["s-00000-of-00002.tfrecord",
                                                        "s-00001-of-00002.tfrecord"]
    for spec in [tmp_path / "s.tfrecord", str(tmp_path / "s-*.tfrecord"), [s.file for s in shards],
                 tmp_path]:
        np.testing.assert_array_equal(_read_all(R.read_patches(spec, SHAPE)), labels)


def test_hdf5_layout(tmp_path):
    _write(tmp_path / "x.h5", {"label": _patches(5)}, "hdf5")
    with h5py.File(tmp_path / "x.h5", "r") as f:
        assert f["label"].dtype == np.uint8 and f["label"].shape == (5,) + SHAPE
        assert f["label"].chunks is not None and f["label"].fletcher32
    # The patch shape is read from the HDF5 file when not given.
    assert _read_all(R.read_patches(tmp_path / "x.h5")).shape == (5,) + SHAPE


def test_patch_shape_from_the_sidecar(tmp_path):
    _write(tmp_path / "x.tfrecord", {"label": _patches(2)}, "tfrecord")
    with pytest.raises(ValueError, match="does not store its patch shape"):
        R.read_patches(tmp_path / "x.tfrecord")
    (tmp_path / "x.tfrecord.json").write_text(json.dumps({"shapes": {"label": list(SHAPE)}}))
    assert _read_all(R.read_patches(tmp_path / "x.tfrecord")).shape == (2,) + SHAPE


def test_writer_checks_the_announced_count(tmp_path):
    with pytest.raises(ValueError, match="2 records were given, 3 were announced"):
        R.write_records(tmp_path / "x.tfrecord", [{"label": _patches(2)}], 3)
    with pytest.raises(ValueError, match="more than the announced 1 records"):
        R.write_records(tmp_path / "y.tfrecord", [{"label": _patches(2)}], 1)


# --------------------------------------------------------------------------- damaged input

@pytest.fixture
def good_tfrecord(tmp_path):
    _write_by_hand(tmp_path / "good.tfrecord", _patches(20))
    return tmp_path / "good.tfrecord"


def _cut(data):
    return data[:len(data) - 50]


def _flip_a_bit(data):
    data = bytearray(data)
    data[len(data) // 2] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize("damage", [_cut, _flip_a_bit])
def test_damaged_tfrecord_names_the_file(tmp_path, good_tfrecord, damage):
    (tmp_path / "bad.tfrecord").write_bytes(damage(good_tfrecord.read_bytes()))
    with pytest.raises(R.RecordError, match=r"bad\.tfrecord: truncated or corrupt TFRecord file"):
        R.read_patches(tmp_path / "bad.tfrecord", SHAPE)


def test_unvalidated_corrupt_tfrecord_still_fails_loudly(tmp_path, good_tfrecord):
    (tmp_path / "flip.tfrecord").write_bytes(_flip_a_bit(good_tfrecord.read_bytes()))
    dataset = R.read_patches(tmp_path / "flip.tfrecord", SHAPE, validate=False)
    with pytest.raises(tf.errors.DataLossError):
        _read_all(dataset)


def test_record_of_the_wrong_size_names_the_file(good_tfrecord):
    with pytest.raises(R.RecordError, match=r"good\.tfrecord: record 0 has a 'label' of 192 bytes, "
                                            r"expected 4x4x3 = 48"):
        R.read_patches(good_tfrecord, (4, 4, 3))


def test_unvalidated_record_of_the_wrong_size_fails_naming_the_file(good_tfrecord):
    dataset = R.read_patches(good_tfrecord, (4, 4, 3), validate=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="good.tfrecord"):
        _read_all(dataset)


def test_one_bad_record_among_good_ones(tmp_path):
    labels = list(_patches(6))
    labels[4] = labels[4][:4]  # 4x8x3: too few bytes
    _write_by_hand(tmp_path / "mixed.tfrecord", labels)
    with pytest.raises(R.RecordError, match=r"mixed\.tfrecord: record 4 has a 'label' of 96 bytes"):
        R.read_patches(tmp_path / "mixed.tfrecord", SHAPE)


def test_missing_feature_names_the_file(good_tfrecord):
    with pytest.raises(R.RecordError, match=r"good\.tfrecord: records are not tf.train.Examples .*"
                                            r"Feature: image \(data type: string\) is required"):
        R.read_patch_pairs(good_tfrecord, SHAPE, (4, 4, 3))


def test_empty_file_names_it(tmp_path):
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    with pytest.raises(R.RecordError, match=r"empty\.tfrecord: contains no records"):
        R.read_patches(tmp_path / "empty.tfrecord", SHAPE)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"none\.tfrecord: record file not found"):
        R.read_patches(tmp_path / "none.tfrecord", SHAPE)
    with pytest.raises(FileNotFoundError, match=r"no record file matches"):
        R.read_patches(str(tmp_path / "none-*.tfrecord"), SHAPE)


def test_truncation_at_a_record_boundary_is_caught_by_the_sidecar(tmp_path):
    labels = _patches(4)
    _write_by_hand(tmp_path / "x.tfrecord", labels)
    data = (tmp_path / "x.tfrecord").read_bytes()
    (tmp_path / "x.tfrecord").write_bytes(data[:len(data) // 2])  # exactly 2 of 4 records
    (tmp_path / "x.tfrecord.json").write_text(json.dumps({"files": [{"file": "x.tfrecord", "count": 4}]}))
    with pytest.raises(R.RecordError, match=r"x\.tfrecord: holds 2 records but its sidecar .* says 4"):
        R.read_patches(tmp_path / "x.tfrecord", SHAPE)


def test_truncated_hdf5_names_the_file(tmp_path):
    _write(tmp_path / "x.h5", {"label": _patches(50)}, "hdf5")
    data = (tmp_path / "x.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[:len(data) // 2])
    with pytest.raises(R.RecordError, match=r"cut\.h5: (not a readable HDF5 file|corrupt HDF5 data)"):
        R.read_patches(tmp_path / "cut.h5", SHAPE)


def test_corrupt_hdf5_data_is_detected_by_the_checksums(tmp_path):
    labels = _patches(50)
    _write(tmp_path / "x.h5", {"label": labels}, "hdf5")
    data = bytearray((tmp_path / "x.h5").read_bytes())
    where = bytes(data).find(labels[30].tobytes()[:64])  # inside the stored patches
    assert where > 0
    data[where + 10] ^= 0x01
    (tmp_path / "flip.h5").write_bytes(bytes(data))
    with pytest.raises(R.RecordError, match=r"flip\.h5: corrupt HDF5 data in 'label'"):
        R.read_patches(tmp_path / "flip.h5", SHAPE)


def test_hdf5_without_the_dataset_lists_what_it_holds(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["patches"] = _patches(2)
    with pytest.raises(R.RecordError, match=r"other\.h5: HDF5 file has no dataset 'label'; "
                                            r"it holds \['patches'\]"):
        R.read_patches(tmp_path / "other.h5", SHAPE)


def test_hdf5_of_the_wrong_shape_names_the_file(tmp_path):
    _write(tmp_path / "x.h5", {"label": _patches(2)}, "hdf5")
    with pytest.raises(R.RecordError, match=r"x\.h5: dataset 'label' is uint8 \(2, 8, 8, 3\), "
                                            r"expected uint8 \[N, 4, 4, 3\]"):
        R.read_patches(tmp_path / "x.h5", (4, 4, 3))


def test_format_detection(tmp_path):
    assert R.format_of("a.H5") == "hdf5" and R.format_of("a.tfrecords") == "tfrecord"
    _write(tmp_path / "x.h5", {"label": _patches(2)}, "hdf5")
    (tmp_path / "noext").write_bytes((tmp_path / "x.h5").read_bytes())
    assert R.format_of(tmp_path / "noext") == "hdf5"
    assert _read_all(R.read_patches(tmp_path / "noext", SHAPE)).shape == (2,) + SHAPE


@pytest.mark.parametrize("fmt", ["tfrecord", "hdf5"])
def test_a_failed_write_leaves_the_old_files_and_no_partial_one(tmp_path, fmt):
    from mzsr_tf.atomic import WriteError

    path = tmp_path / f"x{R.extension_for(fmt)}"
    old = _patches(4, seed=1)
    R.write_records(path, [{"label": old}], 4, fmt, num_shards=2, sidecar=lambda shards: {"version": "old"})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == sorted([pathlib.Path(f).name for f in R.shard_paths(path, 2)] + [path.name + ".json"])

    def batches():  # the disk fills up after the first shard
        yield {"label": _patches(3, seed=2)}
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError) as info:
        R.write_records(path, batches(), 6, fmt, num_shards=2, sidecar=lambda shards: {"version": "new"})
    assert str(info.value) == f"cannot write {R.shard_paths(path, 2)[1]}: No space left on device"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old set intact, nothing added
    np.testing.assert_array_equal(_read_all(R.read_patches(R.shard_paths(path, 2), SHAPE)), old)
