"""Shared pytest fixtures: paths to ``../shared`` material (skipped with a reason when absent)."""
import logging
import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
GOLDEN = REPO_ROOT / "tests" / "golden"


def _require(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{path} is missing; CI must have ../shared beside the repository")
        pytest.skip(f"needs {path} (the read-only ../shared folder beside the repository)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def reference_dir() -> pathlib.Path:
    """``../shared/mzsr_reference``: Pretrained checkpoint, GT/Set5, Input/g20."""
    return _require(SHARED / "mzsr_reference")


@pytest.fixture(scope="session")
def golden_dir() -> pathlib.Path:
    return GOLDEN


@pytest.fixture(autouse=True)
def _restore_the_library_logger():
    """Scripts run in-process (``scripts/main.py``'s ``main``) give the ``mzsr_tf`` logger a stdout handler and
    stop it propagating. Each test starts with the logger as a library user has it (no handler, propagating:
    ``caplog`` sees its messages, whatever ran before, in a test or a fixture) and leaves it as it found it."""
    logger = logging.getLogger("mzsr_tf")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    logger.handlers[:] = []
    logger.propagate = True
    yield
    logger.handlers[:] = handlers
    logger.propagate = propagate
    logger.setLevel(level)
