"""The test suite's own rules (tests/conftest.py): one tier per test, ../shared required under CI, a cache of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import conftest


def fake_item(nodeid: str, *markers: str):
    return SimpleNamespace(nodeid=nodeid, iter_markers=lambda: [SimpleNamespace(name=m) for m in markers])


@pytest.mark.unit
def test_a_test_without_exactly_one_tier_is_an_error():
    conftest.pytest_collection_modifyitems(None, [fake_item("t::ok", "unit", "parametrize")])
    with pytest.raises(pytest.UsageError, match=r"2 do not:\n  t::none: no tier\n  t::two: integration, unit"):
        conftest.pytest_collection_modifyitems(None, [fake_item("t::ok", "realdata"), fake_item("t::none"),
                                                      fake_item("t::two", "unit", "integration")])


@pytest.mark.unit
@pytest.mark.parametrize("ci, option, required", [("", False, False), ("true", False, True), ("", True, True),
                                                  ("false", False, False)])
def test_missing_shared_data_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path, ci, option, required):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(conftest, "SHARED", tmp_path / "absent")
    monkeypatch.setattr(conftest, "REQUIRE_SHARED", False)
    conftest.pytest_configure(SimpleNamespace(getoption=lambda name: option))
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match="absent: the real-data checks need ../shared"):
        conftest.shared_path("data", "beir", "scifact")
    (tmp_path / "absent" / "data").mkdir(parents=True)
    assert conftest.shared_path("data") == tmp_path / "absent" / "data"


@pytest.mark.unit
def test_the_tests_write_only_into_their_own_cache():
    from evalkit.files import cache_root

    assert cache_root() == Path(conftest.TEST_CACHE) and Path(conftest.TEST_CACHE).is_dir()


@pytest.mark.integration
def test_a_users_exported_cache_is_never_the_tests_cache(tmp_path):
    user_cache = tmp_path / "my-real-cache"
    code = "import os, conftest; print(os.environ['EVALKIT_CACHE'])"
    proc = subprocess.run([sys.executable, "-c", code], cwd=conftest.REPO / "tests", capture_output=True, text=True,
                          env={**os.environ, "EVALKIT_CACHE": str(user_cache)}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    used = proc.stdout.strip()
    shutil.rmtree(used)  # conftest imported without a pytest session: nothing else removes it
    assert used != str(user_cache) and Path(used).name.startswith("evalkit-test-cache-")
