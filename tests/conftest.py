import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_BIGBANK = ROOT.parent / "shared" / "data" / "bigbank_3500.json.zip"
SHARED_SYNTHBANK = ROOT.parent / "shared" / "data" / "synthbank_3000.json.zip"


def _bigbank() -> Path | None:
    env = os.environ.get("HANDWRITING_BIGBANK")
    for p in ([Path(env)] if env else []) + [SHARED_BIGBANK]:
        if p.is_file():
            return p
    return None


@pytest.fixture(scope="session")
def bigbank_path() -> Path:
    """The real bigbank zip (../shared/data or $HANDWRITING_BIGBANK); tests that need it skip without it."""
    p = _bigbank()
    if p is None:
        pytest.skip(
            "bigbank_3500.json.zip not found: set HANDWRITING_BIGBANK=/path/to/bigbank_3500.json.zip "
            "or run `python -m handwriting data download bigbank`"
        )
    return p


@pytest.fixture(scope="session")
def synthbank_path() -> Path:
    """The real synthbank zip (../shared/data or $HANDWRITING_SYNTHBANK); tests that need it skip without it."""
    env = os.environ.get("HANDWRITING_SYNTHBANK")
    for p in ([Path(env)] if env else []) + [SHARED_SYNTHBANK]:
        if p.is_file():
            return p
    pytest.skip(
        "synthbank_3000.json.zip not found: set HANDWRITING_SYNTHBANK=/path/to/synthbank_3000.json.zip "
        "or run `python -m handwriting data download synthbank`"
    )


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test: exact numbers, and no OpenMP spinning on a shared 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
