"""Every config file loads and validates; the task registry matches the paper's instructions."""

from __future__ import annotations

import csv

import pytest
from hydra import compose, initialize
from hydra.errors import ConfigCompositionException

from evalkit import EvalkitError
from evalkit.__main__ import canonical_overrides, register_configs
from evalkit.config import ModelConfig, load_model_config, model_names, structured, to_run_config
from evalkit.tasks import get_task_spec, load_task_specs, resolve_task_name

from conftest import shared_path

BEIR_ALIASES = {
    "msmarco": "MSMARCO", "scifact": "SciFact", "nfcorpus": "NFCorpus", "arguana": "ArguAna", "scidocs": "SCIDOCS",
    "fiqa": "FiQA2018", "trec-covid": "TRECCOVID", "webis-touche2020": "Touche2020", "quora": "QuoraRetrieval",
    "nq": "NQ", "hotpotqa": "HotpotQA", "fever": "FEVER", "climate-fever": "ClimateFEVER",
    "dbpedia-entity": "DBPedia", "cqadupstack": "CQADupstackRetrieval",
}
V1_TO_V2 = {"accuracy": "accuracy", "v_measure": "v_measure", "cos_sim_ap": "cosine_ap", "map": "map_at_1000",
            "ndcg_at_10": "ndcg_at_10", "cos_sim_spearman": "cosine_spearman"}


def read_tsv(path):
    with open(path, encoding="utf-8") as fh:
        return {row["task"]: row for row in csv.DictReader(fh, delimiter="\t")}


@pytest.mark.realdata
def test_registry_has_the_56_tasks_with_the_papers_instructions():
    reference = read_tsv(shared_path("reference", "e5-mistral-7b-instruct.tsv"))
    instructions = read_tsv(shared_path("reference", "instructions.tsv"))
    specs = {spec.mteb_task: spec for spec in load_task_specs().values()}
    assert set(specs) == set(reference) and len(specs) == 56
    for name, spec in specs.items():
        ref = reference[name]
        assert spec.instruction == instructions[name]["instruction"], name
        assert (spec.type, spec.split, spec.hf_subset) == (ref["type"], ref["split"], ref["hf_subset"]), name
        expected = "max_over_subqueries_map_at_1000" if name == "MindSmallReranking" else V1_TO_V2[ref["metric"]]
        assert spec.metric == expected, name
    assert [s.mteb_task for s in specs.values() if s.symmetric] == ["QuoraRetrieval"]


@pytest.mark.unit
@pytest.mark.parametrize("alias,mteb_name", sorted(BEIR_ALIASES.items()))
def test_beir_aliases_resolve(alias, mteb_name):
    assert get_task_spec(alias).mteb_task == mteb_name
    assert get_task_spec(alias.upper()).mteb_task == mteb_name


@pytest.mark.unit
def test_msmarco_is_the_dev_split():
    spec = get_task_spec("msmarco")
    assert (spec.mteb_task, spec.split, spec.metric) == ("MSMARCO", "dev", "ndcg_at_10")


@pytest.mark.unit
def test_every_task_names_an_mteb_task_with_that_split_and_subset():
    import mteb

    for spec in load_task_specs().values():
        meta = mteb.get_task(spec.mteb_task).metadata
        assert spec.split in meta.eval_splits, spec.name
        assert spec.hf_subset in meta.hf_subsets, spec.name
        assert meta.type == spec.type, spec.name


@pytest.mark.unit
def test_unknown_task_suggests_close_names():
    with pytest.raises(EvalkitError, match="did you mean scifact"):
        resolve_task_name("scifct")


@pytest.mark.unit
@pytest.mark.parametrize("name", model_names())
def test_every_model_config_loads(name):
    cfg = load_model_config(name)
    assert cfg.trust_remote_code is False
    assert cfg.name and cfg.revision  # pinned: the revision names the results folder


@pytest.mark.unit
def test_e5_mistral_config_is_the_papers_protocol():
    cfg = load_model_config("e5_mistral_7b")
    assert (cfg.name, cfg.pooling, cfg.max_length, cfg.dtype) == ("intfloat/e5-mistral-7b-instruct", "last", 512, "float16")
    assert cfg.revision and len(cfg.revision) == 40
    assert cfg.prompt.template == "Instruct: {instruction}\nQuery: {text}"
    assert cfg.unnormalized_types == ["Classification"]
    assert set(cfg.prompt.instruct_documents_for) == {
        "Classification", "Clustering", "PairClassification", "Reranking", "STS", "Summarization"}


@pytest.mark.unit
def test_unknown_model_key_is_rejected():
    with pytest.raises(EvalkitError, match="bogus"):
        structured(ModelConfig, {"name": "a/b", "name_or_path": "x", "bogus": 1}, "model")


@pytest.mark.unit
def test_bad_choice_is_rejected():
    with pytest.raises(EvalkitError, match=r"pooling: Invalid value .median., expected one of \[last, mean, cls, "
                                           r"lasttoken, weightedmean, max, mean_sqrt_len_tokens\]"):
        load_model_config("minilm", pooling="median")


def compose_run(*overrides: str):
    """What `evalkit` composes: the same registered configs, overrides and search path."""
    argv = canonical_overrides(list(overrides))
    register_configs(argv)
    with initialize(config_path=None, version_base="1.3"):
        return to_run_config(compose(config_name="config", overrides=argv))


@pytest.mark.unit
@pytest.mark.parametrize("model", model_names())
def test_hydra_composes_every_model(model):
    run = compose_run("task=scifact", f"model={model}")
    assert run.model == load_model_config(model)
    assert run.task == get_task_spec("SciFact")


@pytest.mark.unit
def test_hydra_overrides_reach_the_run_config():
    run = compose_run("task=msmarco", "model=minilm", 'task.instruction="Find it"', "data_dir=/x",
                      "results_dir=/y", "encode.batch_size=8", "model.max_length=128")
    assert (run.task.mteb_task, run.task.instruction) == ("MSMARCO", "Find it")
    assert (run.data_dir, run.results_dir, run.encode.batch_size, run.model.max_length) == ("/x", "/y", 8, 128)


@pytest.mark.unit
def test_hydra_composes_an_mteb_task_without_a_file():
    run = compose_run("task=summevalsummarization.v2", "model=minilm", "strict_instructions=true",
                      "task.hf_subsets=[default]")
    assert (run.task.mteb_task, run.task.type, run.task.metric, run.task.instruction) == (
        "SummEvalSummarization.v2", "Summarization", "cosine_spearman", None)
    assert run.strict_instructions is True and run.task.hf_subsets == ["default"]


@pytest.mark.unit
def test_hydra_rejects_unknown_keys():
    with pytest.raises(EvalkitError, match="unknown key 'model.bogus'; known: model.name, model.name_or_path"):
        compose_run("task=scifact", "model=minilm", "model.bogus=1")
    with pytest.raises(ConfigCompositionException):  # what gets past the key check still meets the schema
        compose_run("task=scifact", "model=minilm", "model.max_length=many")


@pytest.mark.unit
def test_no_task_is_an_error():
    with pytest.raises(EvalkitError, match="no task given"):
        compose_run("model=minilm")


@pytest.mark.unit
def test_task_files_hold_only_what_mteb_does_not_know():
    """A shipped task file gives the paper's instruction, aliases and symmetric; a split, subset or metric only
    where evalkit deliberately differs from mteb's metadata, with the reason on that line."""
    import mteb
    import yaml

    from evalkit.conf_path import CONF_DIR
    from evalkit.tasks import FROM_MTEB, spec_from_mteb

    for path in sorted((CONF_DIR / "tasks").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        assert set(data) <= {"instruction", "aliases", "symmetric", *FROM_MTEB} - {"type"}, path.name
        derived = spec_from_mteb(mteb.get_task(path.stem).metadata)
        for key in set(data) & set(FROM_MTEB):
            assert data[key] != getattr(derived, key), f"{path.name}: {key} restates mteb's {getattr(derived, key)}"
            line = next(line for line in text.splitlines() if line.startswith(f"{key}:"))
            assert "#" in line, f"{path.name}: {key} says not why it differs from mteb"


@pytest.mark.unit
def test_task_files_are_read_without_mteb_and_completed_from_it():
    from evalkit.tasks import load_task_specs, task_files

    written, complete = task_files()["SciFact"], load_task_specs()["SciFact"]
    assert (written.type, written.split, written.metric) == (None, None, None)
    assert (complete.type, complete.split, complete.hf_subset, complete.metric) == (
        "Retrieval", "test", "default", "ndcg_at_10")
    assert load_task_specs()["AmazonCounterfactualClassification"].hf_subset == "en"  # the file's, not mteb's en-ext


@pytest.mark.unit
def test_a_run_refuses_a_task_whose_split_or_metric_is_unset():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"task": {"name": "SciFact", "mteb_task": "SciFact", "instruction": "x"},
                            "model": dict(vars(load_model_config("minilm")))})
    with pytest.raises(EvalkitError, match="type, split, metric not set"):
        to_run_config(cfg)
