"""A changed protocol is never labelled as the published one, and what can be checked before the model loads is
checked there, in one line: task files under new names, overrides that would not act, metrics and subsets a
task does not have, data a task's evaluator cannot score, templates, devices and config files."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit import EvalkitError
from evalkit.conf_path import CONFIG_PATH_ENV
from evalkit.identity import experiment
from evalkit.runner import run

from test_mteb_folder import STS_ROWS, sib200, write_jsonl
from test_trust_identity import config, published_scifact
from test_userconf import write


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
    from evalkit.instructions import resolve_instruction

    assert resolve_instruction(get_task_spec("SciFactEvidence"))[1] == "conf/tasks/SciFactEvidence.yaml"  # the record
    again = experiment(config(tmp_path, tmp_path, task="SciFactAgain"), shipped)
    default = experiment(config(tmp_path, tmp_path), shipped)
    assert again.folder == default.folder == "seed0" and again.identity == default.identity


# -- fail before the model loads ------------------------------------------------------------------------

@pytest.fixture
def no_model(monkeypatch):
    """Loading the model fails the test: every check here must come before it."""
    import evalkit.runner

    def loaded(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(evalkit.runner, "Encoder", loaded)


def refused(cfg, *patterns: str) -> str:
    with pytest.raises(EvalkitError) as info:
        run(cfg)
    message = str(info.value)
    assert "\n" not in message and all(p in message for p in patterns), message
    return message


@pytest.mark.unit
def test_a_type_override_that_would_not_act_is_refused(no_model, small_beir, tmp_path):
    """task.type=STS on a retrieval task would change only the stored identity (documents 'instructed') and
    score retrieval: refused; the type mteb gives is accepted."""
    refused(config(tmp_path / "r", small_beir, task_fields={"type": "STS"}), "task.type=STS", "Retrieval")
    with pytest.raises(AssertionError, match="the model was loaded"):
        run(config(tmp_path / "r", small_beir, task_fields={"type": "Retrieval"}))
    assert not (tmp_path / "r").exists()


@pytest.mark.unit
def test_a_subset_the_folder_or_the_task_lacks_is_refused(no_model, small_beir, tmp_path):
    """A local folder without the headline subset never prints another subset's score; a subset the task does
    not have is one line, not mteb's 'no task' error."""
    folder = sib200(tmp_path / "sib")
    cfg = config(tmp_path / "r", folder, task="SIB200ClusteringS2S", task_fields={"hf_subset": "deu_Latn"})
    refused(cfg, "deu_Latn", "eng_Latn, fra_Latn", str(folder))
    refused(config(tmp_path / "r", small_beir, task_fields={"hf_subset": "en"}), "SciFact has no subset 'en'")
    assert not (tmp_path / "r").exists()


@pytest.mark.unit
def test_a_metric_the_task_does_not_write_is_refused(no_model, small_beir, tmp_path):
    refused(config(tmp_path / "r", small_beir, task_fields={"metric": "ndcg_at_11"}), "task.metric=ndcg_at_11",
            "did you mean")
    refused(config(tmp_path / "r", small_beir, task_fields={"metric": "cosine_spearman"}), "writes no such score")
    with pytest.raises(AssertionError, match="the model was loaded"):  # a key it writes
        run(config(tmp_path / "r", small_beir, task_fields={"metric": "map_at_10"}))


@pytest.mark.unit
def test_the_metric_keys_are_those_mteb_writes():
    """The keys evalkit accepts are exactly those in mteb's published result of each family (its own files)."""
    from evalkit.tasks import get_mteb_task, get_task_spec
    from evalkit.validate import metric_keys

    for name, main in (("SciFact", "ndcg_at_10"), ("STSBenchmark", "cosine_spearman"),
                       ("TwitterURLCorpus", "max_ap"), ("Banking77Classification", "accuracy"),
                       ("SummEval", "cosine_spearman"), ("RedditClustering", "v_measure")):
        keys = metric_keys(get_mteb_task(get_task_spec(name)))
        assert main in keys and "main_score" in keys, name
    assert {"cosine_ap", "max_ap", "recall_at_100", "nauc_ndcg_at_10_max"} <= metric_keys(
        get_mteb_task(get_task_spec("TwitterURLCorpus"))) | metric_keys(get_mteb_task(get_task_spec("SciFact")))


@pytest.mark.unit
@pytest.mark.parametrize("task, rows, patterns", [
    ("STSBenchmark", {"test": [{**row, "score": str(row["score"])} for row in STS_ROWS]}, ("row 0",
                                                                                         "'score' must be a number", "'0.0'")),
    ("STSBenchmark", {"test": [*STS_ROWS[:3], {**STS_ROWS[3], "score": None}]}, ("row 3", "got None")),
    ("SICKNLPairClassification", {"test": [{"sentence1": "a", "sentence2": "b", "labels": i % 3} for i in range(6)]},
     ("row 2", "'labels' must be 0 or 1, got 2")),
    ("Banking77Classification", {"train": [{"text": f"t{i}", "label": i % 2} for i in range(8)],
                                 "test": [{"text": f"t{i}", "label": str(i % 2)} for i in range(4)]},
     ("labels are of different kinds", "train: numbers", "test: str")),
])
def test_data_the_evaluator_cannot_score_is_refused_before_the_model_loads(no_model, tmp_path, task, rows, patterns):
    folder = tmp_path / task
    for split, split_rows in rows.items():
        write_jsonl(folder / f"{split}.jsonl", split_rows)
    refused(config(tmp_path / "r", folder, task=task), *patterns)
    assert not (tmp_path / "r").exists()


@pytest.mark.unit
def test_every_shipped_task_passes_the_checks():
    """The checks refuse nothing evalkit ships: each task's type, subset and headline metric are mteb's."""
    from evalkit.tasks import load_task_specs
    from evalkit.validate import check_spec

    for spec in load_task_specs().values():
        check_spec(spec)


@pytest.mark.unit
@pytest.mark.parametrize("template, patterns", [
    ("Instruct: {instrution}\nQuery: {text}", ("unknown placeholder {instrution}",)),
    ("Instruct: {instruction}\nQuery: {0}", ("unknown placeholder {0}",)),
    ("Instruct: {instruction}\nQuery: {text", ("not a valid template",)),
    ("Instruct: {instruction}", ("no {text} placeholder",)),
])
def test_a_prompt_template_with_an_unknown_placeholder_is_refused(no_model, small_beir, tmp_path, template, patterns):
    refused(config(tmp_path / "r", small_beir, prompt={"template": template}), "model.prompt.template", *patterns)


@pytest.mark.unit
def test_a_cuda_device_without_cuda_is_one_line(no_model, small_beir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    refused(config(tmp_path / "r", small_beir, device="cuda"), "model.device=cuda", "no CUDA device")
    refused(config(tmp_path / "r", small_beir, device="gpu"), "model.device=gpu", "not a device")


@pytest.mark.unit
def test_a_lone_surrogate_in_a_corpus_names_file_and_line(no_model, small_beir, tmp_path):
    """A `\\ud800` escape without its pair is no text (nothing can encode it): one line naming file:line, before
    the model loads; a proper pair (an emoji) is text like any other."""
    corpus = small_beir / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[1] = lines[1].replace("A short note", "A short \\ud83d\\ude00 note")
    corpus.write_text("\n".join(lines) + "\n")
    with pytest.raises(AssertionError, match="the model was loaded"):
        run(config(tmp_path / "r", small_beir))
    lines[2] = lines[2].replace("A short note", "A short \\ud800 note")
    corpus.write_text("\n".join(lines) + "\n")
    refused(config(tmp_path / "r", small_beir), f"{corpus}:3: a lone surrogate (\\ud800 without its pair)")


BROKEN_MODEL = "defaults: [minilm]\nname: me/x\n  pooling: [cls\n"  # line 3, column 10: a mapping inside a scalar


@pytest.mark.unit
def test_a_broken_yaml_in_a_user_config_names_file_and_line(user_conf):
    from evalkit.config import load_model_config
    from evalkit.tasks import task_files

    write(user_conf / "model" / "broken.yaml", BROKEN_MODEL)
    with pytest.raises(EvalkitError, match=r"model/broken.yaml:3:10: not valid YAML \(mapping values are not allowed"):
        load_model_config("minilm")  # any composition: Hydra may read every file of the folder
    (user_conf / "model" / "broken.yaml").unlink()
    write(user_conf / "tasks" / "Bad.yaml", 'instruction: "unclosed\naliases: [bad]\n')
    with pytest.raises(EvalkitError, match=r"tasks/Bad.yaml:3:1: not valid YAML"):
        task_files()


@pytest.mark.integration
def test_a_broken_model_file_on_the_command_line_is_one_line(user_conf, small_beir):
    from test_cli import assert_one_line_error, evalkit

    write(user_conf / "model" / "broken.yaml", BROKEN_MODEL)
    proc = evalkit("--config-dir", str(user_conf), "task=scifact", "model=broken", f"data_dir={small_beir}")
    assert_one_line_error(proc, "broken.yaml:3:10: not valid YAML")


@pytest.mark.unit
def test_a_metric_only_the_run_can_check_is_one_line_and_nothing_is_written(small_beir, tmp_path, monkeypatch):
    """A task with scores of its own (MindSmallReranking's main score is none of retrieval's) is checked when mteb
    has written its scores: one line naming what it wrote, never a KeyError, and no result file."""
    import evalkit.validate
    from evalkit.tasks import get_mteb_task, get_task_spec
    from evalkit.validate import metric_keys

    assert metric_keys(get_mteb_task(get_task_spec("MindSmallReranking"))) is None
    monkeypatch.setattr(evalkit.validate, "metric_keys", lambda task: None)  # as for such a task
    refused(config(tmp_path / "r", small_beir, task_fields={"metric": "ndcg_at_11"}), "task.metric=ndcg_at_11",
            "wrote no such score; did you mean ndcg_at_1")
    assert not list((tmp_path / "r").rglob("*.json"))
