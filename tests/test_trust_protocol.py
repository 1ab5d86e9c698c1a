"""A changed protocol is never labelled as the published one, and what can be checked before the model loads is
checked there, in one line: task files under new names, overrides that would not act, metrics and subsets a
task does not have, data a task's evaluator cannot score, templates, devices and config files."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit import EvalkitError
from evalkit.conf_path import CONFIG_PATH_ENV
from evalkit.identity import experiment

from test_trust_identity import config, published_scifact


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def user_conf(tmp_path, monkeypatch) -> Path:
    conf = tmp_path / "myconf"
    conf.mkdir()
    monkeypatch.setenv(CONFIG_PATH_ENV, str(conf))
    return conf


# -- a user's task file under a new name -----------------------------------------------------------------

@pytest.mark.unit
def test_a_task_file_under_a_new_name_is_measured_against_the_shipped_protocol_of_its_mteb_task(user_conf, tmp_path):
    """docs/configuration.md's SciFactEvidence.yaml (SciFact, another instruction) on the published test set is
    another experiment in a folder of its own; the same instruction under a new name is the same experiment."""
    from evalkit.tasks import get_task_spec

    write(user_conf / "tasks" / "SciFactEvidence.yaml",
          "mteb_task: SciFact\ninstruction: Given a scientific claim, retrieve documents that provide evidence for it\n")
    write(user_conf / "tasks" / "SciFactAgain.yaml",
          f"mteb_task: SciFact\ninstruction: {get_task_spec('scifact').instruction}\n")
    shipped = published_scifact()
    evidence = experiment(config(tmp_path, tmp_path, task="SciFactEvidence"), shipped)
    assert "instruction" in evidence.differs and evidence.folder.startswith("seed0__instruction-")
    again = experiment(config(tmp_path, tmp_path, task="SciFactAgain"), shipped)
    default = experiment(config(tmp_path, tmp_path), shipped)
    assert again.folder == default.folder == "seed0" and again.identity == default.identity
