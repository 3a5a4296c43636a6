"""The pack's folder is a ComfyUI package, not a test package.

Its ``__init__.py`` is written for ComfyUI's loader (a relative import under a package name that
ComfyUI chooses). pytest, seeing that file at the root, would import it as a module named
``__init__`` whenever the clone's folder name is not a Python identifier (``comfyui-jojogan``, the
name the README uses) and fail with "attempted relative import with no known parent package". This
plugin makes pytest collect the root as a plain directory, so the suite runs under any folder name.
(A plugin object is needed: a conftest's own hooks do not apply to the directory it sits in.)
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


class _PackRootIsADirectory:
    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path: Path, parent: pytest.Collector):
        if path == ROOT:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_PackRootIsADirectory(), "jojogan-pack-root")
