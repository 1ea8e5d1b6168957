"""Shared pytest set-up: area fixture modules are registered here (one line each)."""

from pathlib import Path

import pytest

pytest_plugins = [
    "conftest_capture",
    "conftest_s3",
    "conftest_sync",
    "pytester",
]

#: The in-tree plugin distributions (``plugins/<name>``): what this repository's tests load. A
#: plugin installed into the environment from elsewhere (an example, a vendor's adapter) does
#: not leak into them.
IN_TREE_PLUGINS = tuple(sorted(p.name for p in (Path(__file__).resolve().parent.parent / "plugins").iterdir()
                               if (p / "pyproject.toml").is_file()))


@pytest.fixture
def cf_plugins(request):
    marker = request.node.get_closest_marker("cf_plugins")
    return tuple(marker.args) if marker is not None else IN_TREE_PLUGINS
