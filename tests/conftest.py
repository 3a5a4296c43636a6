import pathlib
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The core imports as `jojogan` from the checkout even without `pip install -e .`.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def pack_root() -> pathlib.Path:
    return ROOT


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: on shared cores it is faster and steadier than two."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def style_registry():
    """Restore the toy style registry (and the record of loaded style files) after the test."""
    from jojogan.toy import render as r

    styles, modules = dict(r.STYLES), dict(r._STYLE_MODULES)
    yield
    r.STYLES.clear()
    r.STYLES.update(styles)
    r._STYLE_MODULES.clear()
    r._STYLE_MODULES.update(modules)
