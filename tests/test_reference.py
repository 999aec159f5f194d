"""A clone without the reference material beside it: its tests skip and say how to get
it, or fail where CI requires it; the fetch script checks what it downloads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SPEC
from tools import reference

ONE_TEST = "tests/test_supply_chain.py::test_embedded_map_is_the_real_one"


def run_pytest(tmp_path, **env):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("COV_", "PYTEST_", "GOODS_FACTORY_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", ONE_TEST, "-p", "no:cacheprovider", "-rs", "-q",
         "--no-cov"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**clean, "GOODS_FACTORY_SHARED": str(tmp_path / "nowhere"),
             "XDG_CACHE_HOME": str(tmp_path / "cache"), **env})


def test_a_bare_clone_skips_with_the_way_to_get_the_material(tmp_path):
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "the captured game data is not at" in result.stdout


def test_a_bare_clone_fails_where_ci_requires_the_material(tmp_path):
    result = run_pytest(tmp_path, GOODS_FACTORY_REQUIRE_REFERENCE="1")
    assert result.returncode == 1
    assert "1 error" in result.stdout and "GOODS_FACTORY_REQUIRE_REFERENCE=1" in result.stdout


class Served:
    def __init__(self, root, tamper=None):
        self.root, self.tamper, self.urls = root, tamper, []

    def __call__(self, url):
        self.urls.append(url)
        name = url.removeprefix(reference.RAW)
        content = (self.root / name).read_bytes()
        return _Response(b"{}" if name == self.tamper else content)


class _Response:
    def __init__(self, content):
        self.content = content

    def raise_for_status(self):
        return None


@pytest.mark.reference
def test_the_fetch_keeps_only_files_matching_their_pinned_hash(tmp_path):
    assert reference.verify(SPEC) == []
    served = Served(SPEC)
    reference.fetch(tmp_path / "ok", get=served)
    assert reference.verify(tmp_path / "ok") == []
    assert all(u.startswith(reference.RAW) and reference.COMMIT in u for u in served.urls)
    with pytest.raises(SystemExit, match=r"SpaceTraders\.json: the downloaded file does not"):
        reference.fetch(tmp_path / "bad", get=Served(SPEC, "reference/SpaceTraders.json"))
    assert "reference/SpaceTraders.json" in reference.verify(tmp_path / "bad")
    assert reference.main(["--dest", str(tmp_path / "ok")]) == 0
