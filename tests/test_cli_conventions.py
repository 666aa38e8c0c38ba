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
