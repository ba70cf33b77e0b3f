import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_BIGBANK = ROOT.parent / "shared" / "data" / "bigbank_3500.json.zip"


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


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
