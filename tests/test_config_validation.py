"""Every configuration value and flag is checked before any work: one line naming the option, exit 2."""
import json
import math

import pytest

from mzsr_tf import cli
from mzsr_tf.config import (AdaptationConfig, ConfigError, MetaTrainConfig, ModelConfig, PretrainConfig,
                            RunConfig, RuntimeConfig, load_run_config, override)


@pytest.mark.parametrize("values, message", [
    ({"inner_steps": 0}, r"MetaTrainConfig\.inner_steps must be >= 1 and <= 100 \(an integer\), got 0"),
    ({"meta_batch_size": "two"}, r"MetaTrainConfig\.meta_batch_size must be an integer, got 'two'"),
    ({"patch_size": 32.5}, r"MetaTrainConfig\.patch_size must be an integer, got 32\.5"),
    ({"scale_list": 2}, r"MetaTrainConfig\.scale_list must be a list of numbers, got 2"),
    ({"scale_list": [2, "x"]}, r"MetaTrainConfig\.scale_list must be a list of numbers"),
    ({"meta_batch_size": 0}, r"MetaTrainConfig\.meta_batch_size must be >= 1 \(an integer\), got 0"),
    ({"meta_lr": -1e-4}, r"MetaTrainConfig\.meta_lr must be > 0 and <= 1 \(a number\), got -0\.0001"),
    ({"meta_lr": float("nan")}, r"MetaTrainConfig\.meta_lr must be > 0 and <= 1 \(a number\), got nan"),
    ({"freeze_loss_weights": 1}, r"MetaTrainConfig\.freeze_loss_weights must be true or false, got 1"),
    ({"ds_method": "nearest"}, r"MetaTrainConfig\.ds_method must be one of direct, bicubic, got 'nearest'"),
    ({"meta_iter": -5}, r"MetaTrainConfig\.meta_iter must be >= 1 \(an integer\), got -5"),
    ({"patch_size": 6, "scale_list": [4.0]}, r"patch_size must be at least 2 x the largest scale \(8\), got 6"),
    ({"fixed_loss_weights": [0.5, -0.1, 0.2, 0.2, 0.2]},
     r"MetaTrainConfig\.fixed_loss_weights must be >= 0"),
])
def test_meta_train_config_checks_types_and_ranges(values, message):
    with pytest.raises(ConfigError, match=message):
        override(MetaTrainConfig(), values)


@pytest.mark.parametrize("values, message", [
    ({"lr": -1}, r"PretrainConfig\.lr must be > 0 and <= 1 \(a number\), got -1"),
    ({"lr": 1e-5}, r"min_lr \(0\.0001\) must not exceed lr \(1e-05\)"),
    ({"batch_size": 0}, r"PretrainConfig\.batch_size must be >= 1"),
    ({"scale": 2.5}, r"PretrainConfig\.scale must be an integer, got 2\.5"),
])
def test_pretrain_config_checks_types_and_ranges(values, message):
    with pytest.raises(ConfigError, match=message):
        override(PretrainConfig(), values)


def test_other_configs_check_on_construction():
    with pytest.raises(ConfigError, match=r"AdaptationConfig\.scale must be > 1 and <= 16 \(a number\), got 0"):
        AdaptationConfig(scale=0)
    with pytest.raises(ConfigError, match=r"AdaptationConfig\.noise_std must be >= 0 and <= 1 \(a number\), got nan"):
        AdaptationConfig(noise_std=math.nan)
    with pytest.raises(ConfigError, match=r"RuntimeConfig\.strategy must be one of default, mirrored, multiworker"):
        RuntimeConfig(strategy="tpu")
    with pytest.raises(ConfigError, match=r"ModelConfig\.depth must be >= 2 \(an integer\), got 1"):
        ModelConfig(depth=1)
    with pytest.raises(ConfigError, match=r"RunConfig\.train must be MetaTrainConfig or PretrainConfig"):
        RunConfig(train={"patch_size": 8})
    # valid values pass and round-trip through JSON unchanged
    run = override(RunConfig(), {"train": {"patch_size": 32, "fixed_loss_weights": [0.6, 0.1, 0.1, 0.1, 0.1]},
                                 "runtime": {"precision": "mixed_bfloat16"}})
    assert run.train.patch_size == 32 and run.train.fixed_loss_weights == (0.6, 0.1, 0.1, 0.1, 0.1)
    assert run.runtime.precision == "mixed_bfloat16"


def _train(tmp_path, capsys, config=None, *flags):
    argv = ["--train", "--checkpoint-dir", str(tmp_path / "runs"), "--tfrecord", str(tmp_path / "none.tfrecord")]
    if config is not None:
        path = tmp_path / "overrides.json"
        path.write_text(json.dumps(config))
        argv += ["--config", str(path)]
    code = cli.main_script(argv + list(flags))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("config, message", [
    ({"inner_steps": 0}, "inner_steps must be >= 1"),
    ({"meta_batch_size": "two"}, "meta_batch_size must be an integer, got 'two'"),
    ({"patch_size": 32.5}, "patch_size must be an integer, got 32.5"),
    ({"scale_list": 2}, "scale_list must be a list of numbers, got 2"),
    ({"meta_batch_size": 0}, "meta_batch_size must be >= 1"),
])
def test_bad_training_config_is_one_line_and_exit_2(tmp_path, capsys, config, message):
    code, err = _train(tmp_path, capsys, config)
    assert code == 2
    assert err.startswith("error: --config ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_bad_iterations_flag_names_the_flag_and_writes_nothing(tmp_path, capsys):
    code, err = _train(tmp_path, capsys, None, "--iterations", "-5")
    assert code == 2 and err.startswith("error: --iterations -5: ") and "meta_iter must be >= 1" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flags, message", [
    (["--scale", "0"], "error: --scale 0.0: AdaptationConfig.scale must be > 1"),
    (["--scale", "-2"], "error: --scale -2.0: AdaptationConfig.scale must be > 1"),
    (["--noise", "-1"], "error: --noise -1.0: AdaptationConfig.noise_std must be >= 0"),
    (["--noise", "nan"], "error: --noise nan: AdaptationConfig.noise_std must be >= 0 and <= 1 (a number), got nan"),
])
def test_bad_meta_test_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, message):
    code = cli.main_script(["--savepath", str(tmp_path / "out")] + flags)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_bad_pretraining_lr_is_refused(tmp_path, capsys):
    path = tmp_path / "lr.json"
    path.write_text(json.dumps({"lr": -1}))
    code = cli.pretrain_script(["--config", str(path), "--checkpoint-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "PretrainConfig.lr must be > 0" in err and err.count("\n") == 1, err


def test_generate_tfrecord_blames_the_scale(tmp_path, capsys):
    code = cli.generate_tfrecord_script(["--labelpath", str(tmp_path), "--tfrecord", str(tmp_path / "r"),
                                         "--mode", "pretrain", "--scale", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "needs an integer scale >= 2 (--scale), got 0" in err, err


def test_old_run_folders_still_load(tmp_path):
    """The older layout (stage config in config.json, model and precision in run.json) reads as a RunConfig."""
    (tmp_path / "config.json").write_text(json.dumps({"class": "MetaTrainConfig", "values": {"patch_size": 32}}))
    (tmp_path / "run.json").write_text(json.dumps({"trial": 1, "preset_model": 3, "precision": "mixed_bfloat16",
                                                   "replicas": 1, "model": {"width": 64, "depth": 8, "channels": 3}}))
    run = load_run_config(str(tmp_path))
    assert run.train.patch_size == 32 and run.train.meta_batch_size == 5
    assert run.runtime.precision == "mixed_bfloat16" and run.preset == "direct_x4"
    assert run.model == ModelConfig()
