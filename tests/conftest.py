import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The core imports as `jojogan` from the checkout even without `pip install -e .`.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def pack_root() -> pathlib.Path:
    return ROOT
