"""Tests for scripts/convert_checkpoint.py: TF1 -> weights / TF2 / SavedModel, exit codes, messages."""
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf.checkpoints import load_weights
from mzsr_tf.model import MZSRNet
from test_checkpoints import model_layout, random_values, write_tf1_checkpoint  # same tests/ folder

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "convert_checkpoint.py"


def load_script():
    spec = importlib.util.spec_from_file_location("convert_checkpoint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def convert():
    return load_script().main


@pytest.fixture
def tf1_prefix(tmp_path):
    return write_tf1_checkpoint(str(tmp_path / "Model" / "Directx2"), random_values(model_layout(), seed=3))


def test_tf1_to_all_three_formats_gives_identical_outputs(convert, tf1_prefix, tmp_path):
    out = tmp_path / "out"
    assert convert([tf1_prefix, "--weights", str(out / "weights" / "Directx2"),
                    "--tf2-checkpoint", str(out / "tf2"), "--saved-model", str(out / "saved")]) == 0
    x = tf.constant(np.random.default_rng(0).random((1, 17, 12, 3)), tf.float32)
    reference = MZSRNet()
    load_weights(reference, tf1_prefix)
    expected = reference(x).numpy()
    for converted in (out / "weights" / "Directx2", out / "tf2", out / "saved"):
        model = MZSRNet(seed=1)
        load_weights(model, str(converted))
        np.testing.assert_array_equal(model(x).numpy(), expected, err_msg=str(converted))
    assert (out / "tf2" / "ckpt-0.index").is_file()
    served = tf.saved_model.load(str(out / "saved")).signatures["serving_default"](ilr=x)["sr"].numpy()
    np.testing.assert_array_equal(served, np.clip(expected, 0.0, 1.0))


def test_a_narrow_network_converts_with_width_and_depth(convert, tmp_path):
    from mzsr_tf.checkpoints import export_weights
    from mzsr_tf.config import ModelConfig
    source = export_weights(MZSRNet(ModelConfig(width=8, depth=4), seed=0), str(tmp_path / "narrow"))
    assert convert([source, "--width", "8", "--depth", "4", "--weights", str(tmp_path / "copy")]) == 0
    assert dict(tf.train.list_variables(str(tmp_path / "copy")))["MODEL/conv2/kernel"] == [3, 3, 8, 8]


def test_several_sources_are_averaged_weight_by_weight(convert, tmp_path):
    from mzsr_tf.checkpoints import export_weights
    from mzsr_tf.config import ModelConfig
    narrow = ModelConfig(width=4, depth=3)
    sources = [export_weights(MZSRNet(narrow, seed=seed), str(tmp_path / f"run{seed}")) for seed in (0, 1, 2)]
    assert convert(sources + ["--width", "4", "--depth", "3", "--weights", str(tmp_path / "mean")]) == 0
    read = [dict((name, tf.train.load_variable(prefix, name)) for name, _ in tf.train.list_variables(prefix))
            for prefix in sources + [str(tmp_path / "mean")]]
    for name in read[-1]:
        by_hand = (read[0][name] + read[1][name] + read[2][name]) / 3  # numpy, straight from the files
        np.testing.assert_allclose(read[-1][name], by_hand, rtol=1e-6, atol=1e-8)
        if name.endswith("kernel"):  # (biases start at zero in every seed)
            assert not np.allclose(read[-1][name], read[0][name])
    assert convert(sources[:1] + [str(tmp_path / "nothing"), "--width", "4", "--depth", "3",
                                  "--weights", str(tmp_path / "bad")]) == 2


def test_nothing_to_write_is_a_usage_error(convert, tf1_prefix, capsys):
    with pytest.raises(SystemExit) as caught:
        convert([tf1_prefix])
    assert caught.value.code == 2
    assert "nothing to write: give at least one of --weights, --tf2-checkpoint, --saved-model" in capsys.readouterr().err


def test_bad_source_exits_2_with_a_one_line_message(convert, tmp_path, capsys):
    missing = str(tmp_path / "Model" / "Directx4")
    assert convert([missing, "--weights", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: no checkpoint at {missing}: {missing}.index does not exist\n"
    assert not (tmp_path / "w.index").exists()


def test_bad_network_shape_exits_2(convert, tf1_prefix, tmp_path, capsys):
    assert convert([tf1_prefix, "--width", "32", "--weights", str(tmp_path / "w")]) == 2
    assert "does not fit this network (15 mis-shaped tensor(s)): MODEL/conv1/kernel has shape [3, 3, 3, 64], " \
           "expected [3, 3, 3, 32]" in capsys.readouterr().err


def test_unwritable_output_exits_2_before_loading(convert, tf1_prefix, tmp_path, capsys):
    """--weights is checked writable before the sources load, as the other outputs: bad input, one line."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert convert([tf1_prefix, "--weights", str(blocker / "weights")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --weights {blocker / 'weights'}.index: ") and err.count("\n") == 1, err
    assert "is a file, not a folder" in err


def test_runs_as_a_script(tmp_path):
    missing = str(tmp_path / "nothing")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(SCRIPT), missing, "--saved-model", str(tmp_path / "sm")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: no checkpoint at {missing}: {missing}.index does not exist"
