"""What a new user meets in the first hour: messages that say what happened and what to do, numbers that say
what they measured (the CPU token budget, plan's rate, the run summary's counts), and no noise about nothing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from evalkit import EvalkitError
from evalkit.results import record_path
from evalkit.runner import finished

pytestmark = pytest.mark.unit

HUB = {"source": "hub", "datasets": ["mteb/scifact@0a1b2c"]}
LOCAL = {"source": "local", "fingerprint": "sha256:abc"}


def stored_result(tmp_path: Path, data: dict, data_dir: str | None) -> Path:
    """A finished result file whose run record says it was computed on `data`."""
    path = tmp_path / "results" / "org__model" / "rev" / "SciFact.json"
    record_path(path).parent.mkdir(parents=True)
    record_path(path).write_text(json.dumps({"identity": {"model": "m", "data": data}, "data_dir": data_dir}))
    path.write_text("{}")
    return path


def planned(path: Path, data: dict):
    return SimpleNamespace(path=path, experiment=SimpleNamespace(identity={"model": "m", "data": data}))


# -- a data folder forgotten ---------------------------------------------------------------------------------

def test_a_forgotten_data_dir_says_no_data_folder_was_given_and_where_data_would_come_from(tmp_path):
    path = stored_result(tmp_path, LOCAL, "/data/beir/scifact")
    with pytest.raises(EvalkitError) as caught:
        finished(planned(path, HUB), overwrite=False)
    message = str(caught.value)
    assert "was computed from the local data folder /data/beir/scifact" in message
    assert "given no data folder" in message and "from the hub (mteb/scifact@0a1b2c, the revision mteb pins)" in message
    assert "pass data_dir=/data/beir/scifact" in message and "holds another experiment" not in message


def test_a_data_folder_given_where_the_hub_was_used_says_so(tmp_path):
    path = stored_result(tmp_path, HUB, None)
    with pytest.raises(EvalkitError, match=r"computed from the hub's data \(mteb/scifact@0a1b2c.*reads a local data "
                                           r"folder: leave out data_dir="):
        finished(planned(path, LOCAL), overwrite=False)


def test_other_differences_still_name_the_first_difference(tmp_path):
    path = stored_result(tmp_path, LOCAL, "/a")
    with pytest.raises(EvalkitError, match=r"holds another experiment \(data.fingerprint: \"sha256:abc\" -> "):
        finished(planned(path, {**LOCAL, "fingerprint": "sha256:def"}), overwrite=False)
