"""Nothing happens at import that a later call would see differently: the umask, dependency checks, cached
config reads and the offline switch are all read when used; and the one helper that shortens an error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from evalkit.errors import first_line
from evalkit.files import atomic_write

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.unit
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_write_takes_the_umask_of_the_moment(tmp_path, umask, mode):
    """The umask set after evalkit was imported (a job script's `umask 027` in Python) is the one applied."""
    before = os.umask(umask)
    try:
        atomic_write(tmp_path / "x.json", "{}")
    finally:
        os.umask(before)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode


@pytest.mark.integration
def test_importing_the_encoding_package_checks_no_versions():
    """The floors are checked when a command starts (versions.require_for), not as a side effect of an import."""
    code = ("import evalkit.versions as v; v.FLOORS['torch'] = ('999', 'a release that does not exist'); "
            "import evalkit.encoding, evalkit.encoding.encoder; "
            "from evalkit import EvalkitError\n"
            "try:\n    v.require_for('cache')\nexcept EvalkitError as exc:\n    print(exc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "torch" in proc.stdout and "evalkit needs torch>=999" in proc.stdout


@pytest.mark.unit
def test_no_test_module_sets_the_offline_switch_at_import():
    """conftest.py sets HF_HUB_OFFLINE once for every test; a module that sets it again hides whether it does."""
    setting = re.compile(r"^os\.environ(\.setdefault\(|\[)[\"']HF_HUB_OFFLINE", re.M)
    offenders = [p.name for p in sorted((REPO / "tests").glob("test_*.py")) if setting.search(p.read_text())]
    assert offenders == []
    assert setting.search((REPO / "tests" / "conftest.py").read_text())


@pytest.mark.unit
def test_model_defaults_are_read_again_when_the_folders_or_a_file_change(tmp_path, monkeypatch):
    from evalkit.conf_path import CONFIG_PATH_ENV
    from evalkit.identity import _model_defaults, model_files

    user = tmp_path / "conf"
    (user / "model").mkdir(parents=True)
    text = (REPO / "evalkit" / "conf" / "model" / "minilm.yaml").read_text()
    text = text.replace("name: sentence-transformers/all-MiniLM-L6-v2", "name: someone/mine")
    (user / "model" / "mine.yaml").write_text(text)
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)
    assert "someone/mine" not in _model_defaults(model_files())
    monkeypatch.setenv(CONFIG_PATH_ENV, str(user))
    assert _model_defaults(model_files())["someone/mine"].max_length == 256
    (user / "model" / "mine.yaml").write_text(text.replace("max_length: 256", "max_length: 128  # edited"))
    assert _model_defaults(model_files())["someone/mine"].max_length == 128


@pytest.mark.unit
def test_beir_is_neither_a_dependency_nor_recorded():
    """Nothing imports beir (local BEIR folders are read by evalkit.beir_folder): not declared, not in run records."""
    from evalkit.results import PACKAGES

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(re.match(r"beir\b", d) for d in project["dependencies"])
    assert "beir" not in PACKAGES
    assert not [p for p in (REPO / "evalkit").rglob("*.py") if re.search(r"^\s*(import|from) beir\b", p.read_text(), re.M)]


@pytest.mark.parametrize("exc, limit, with_type, line", [
    (ValueError("first\nsecond"), None, False, "first"),
    (ValueError("  \n  padded first\nsecond"), None, False, "padded first"),
    (ValueError("x" * 300), 160, False, "x" * 160),
    (KeyError("k"), None, True, "KeyError: 'k'"),
    (RuntimeError(""), None, False, "RuntimeError"),
    (RuntimeError(), 10, True, "RuntimeError"),
])
@pytest.mark.unit
def test_first_line(exc, limit, with_type, line):
    assert first_line(exc, limit, with_type) == line
