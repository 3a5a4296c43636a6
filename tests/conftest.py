import pathlib

import pytest
import torch

# The import path (`jojogan` from the checkout, the tests' helpers) is pyproject.toml's
# [tool.pytest.ini_options] pythonpath.
ROOT = pathlib.Path(__file__).resolve().parents[1]


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
