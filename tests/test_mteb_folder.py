"""Local mteb dataset folders: every layout loads the same data mteb would, and every bad folder is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from evalkit import EvalkitError
from evalkit.runner import task_and_data
from evalkit.identity import published_test_sets
from evalkit.mteb_folder import load_mteb_folder, read_config, task_data_fingerprint
from evalkit.tasks import get_mteb_task, get_task_spec

from conftest import shared_path
from test_cli import assert_one_line_error, evalkit

STS_ROWS = [{"sentence1": f"a cat sits {i}", "sentence2": f"a cat is sitting {i}", "score": float(i % 6)}
            for i in range(10)]
SIB_ROWS = {split: [{"category": c, "text": f"{split} {c} {i}"} for i, c in enumerate(["travel", "sports", "health"] * n)]
            for split, n in (("train", 3), ("validation", 1), ("test", 2))}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def mteb_task(name: str, all_subsets: bool = True):
    return get_mteb_task(get_task_spec(name), all_subsets=all_subsets)


def as_dicts(dataset) -> dict:
    return {k: as_dicts(v) if isinstance(v, (dict, DatasetDict)) else v.to_dict() for k, v in dataset.items()}


def sib200(folder: Path, subsets=("eng_Latn", "fra_Latn")) -> Path:
    for subset in subsets:
        for split, rows in SIB_ROWS.items():
            write_jsonl(folder / subset / f"{split}.jsonl", rows)
    return folder


@pytest.mark.unit
def test_a_jsonl_folder_loads_as_mteb_would(tmp_path):
    task = mteb_task("STSBenchmark")
    assert load_mteb_folder(task, write_jsonl(tmp_path / "sts" / "test.jsonl", STS_ROWS).parent) == ["default"]
    assert task.data_loaded and task.dataset["test"].to_list() == STS_ROWS


@pytest.mark.unit
@pytest.mark.parametrize("layout", ["parquet", "shards", "save_to_disk", "dataset_save_to_disk"])
def test_every_layout_gives_the_same_data(tmp_path, layout):
    reference = mteb_task("SIB200ClusteringS2S")
    load_mteb_folder(reference, sib200(tmp_path / "jsonl"))
    folder = tmp_path / layout
    for subset in ("eng_Latn", "fra_Latn"):
        config = read_config(tmp_path / "jsonl" / subset)
        for split, data in config.items():
            if layout == "parquet":
                (folder / subset).mkdir(parents=True, exist_ok=True)
                data.to_parquet(str(folder / subset / f"{split}.parquet"))
            elif layout == "shards":
                (folder / subset / split).mkdir(parents=True)
                data.select(range(2)).to_parquet(str(folder / subset / split / "0000.parquet"))
                data.select(range(2, len(data))).to_parquet(str(folder / subset / split / "0001.parquet"))
        if layout == "save_to_disk":
            config.save_to_disk(str(folder / subset))
    if layout == "dataset_save_to_disk":  # one split, the folder named after it (a monolingual task)
        Dataset.from_list(STS_ROWS).save_to_disk(str(folder / "test"))
        task = mteb_task("STSBenchmark")
        load_mteb_folder(task, folder / "test")
        assert task.dataset["test"].to_list() == STS_ROWS
        return
    task = mteb_task("SIB200ClusteringS2S")
    assert load_mteb_folder(task, folder) == ["eng_Latn", "fra_Latn"]
    assert as_dicts(task.dataset) == as_dicts(reference.dataset)
    assert task_data_fingerprint(task) == task_data_fingerprint(reference)  # the data, not its serialisation


@pytest.mark.unit
def test_a_multilingual_task_evaluates_the_subsets_the_folder_holds(tmp_path):
    folder = sib200(tmp_path / "sib", subsets=("fra_Latn", "eng_Latn"))
    task = mteb_task("SIB200ClusteringS2S")
    assert load_mteb_folder(task, folder) == ["eng_Latn", "fra_Latn"]  # mteb's subset order
    test = task.dataset["eng_Latn"]["test"]  # the task's own dataset_transform: all splits pooled, labels encoded
    assert sorted(test.column_names) == ["labels", "sentences"] and len(test) == 18
    task = mteb_task("SIB200ClusteringS2S")
    assert load_mteb_folder(task, folder, ["fra_Latn"]) == ["fra_Latn"] and list(task.dataset) == ["fra_Latn"]
    with pytest.raises(EvalkitError, match=r"has no subset folder deu_Latn/ for SIB200ClusteringS2S"):
        load_mteb_folder(mteb_task("SIB200ClusteringS2S"), folder, ["eng_Latn", "deu_Latn"])


@pytest.mark.unit
def test_a_fast_loading_task_reads_the_default_config_by_its_lang_column(tmp_path):
    rows = [{**row, "lang": lang} for lang in ("en-en", "ko-ko") for row in STS_ROWS]
    task = mteb_task("STS17")
    assert load_mteb_folder(task, write_jsonl(tmp_path / "sts17" / "test.jsonl", rows).parent) == ["ko-ko", "en-en"]
    assert task.dataset["en-en"]["test"].to_list() == STS_ROWS
    task = mteb_task("STS17")  # or one folder per subset
    write_jsonl(tmp_path / "per_subset" / "en-en" / "test.jsonl", STS_ROWS)
    assert load_mteb_folder(task, tmp_path / "per_subset") == ["en-en"]


@pytest.mark.realdata
def test_the_real_sib200_folder_is_what_mteb_describes():
    task = mteb_task("SIB200ClusteringS2S")
    assert load_mteb_folder(task, shared_path("data", "mteb", "SIB200ClusteringS2S")) == ["eng_Latn"]
    assert len(task.dataset["eng_Latn"]["test"]) == 1004  # train + validation + test, as mteb's statistics say


@pytest.mark.realdata
@pytest.mark.parametrize("task,folder", [
    ("STSBenchmark", "STSBenchmark"), ("SummEval", "SummEval"), ("SummEvalSummarization.v2", "SummEval"),
    ("SICK-NL-STS", "SICK-NL-STS"), ("SICKNLPairClassification", "SICKNLPairClassification"),
    ("Banking77Classification", "Banking77Classification"), ("EmotionClassification", "EmotionClassification"),
    ("SIB200ClusteringS2S", "SIB200ClusteringS2S")])
def test_the_shipped_fingerprints_are_those_of_the_local_mteb_folders(task, folder):
    spec = get_task_spec(task)
    loaded = get_mteb_task(spec, all_subsets=True)
    load_mteb_folder(loaded, shared_path("data", "mteb", folder))
    assert published_test_sets()[(spec.mteb_task, spec.split, spec.hf_subset)] == {task_data_fingerprint(loaded)}


@pytest.mark.unit
def test_another_row_order_is_another_fingerprint(tmp_path):
    """Classification draws its training sets by position: the order is part of the data."""
    first, second = mteb_task("STSBenchmark"), mteb_task("STSBenchmark")
    load_mteb_folder(first, write_jsonl(tmp_path / "a" / "test.jsonl", STS_ROWS).parent)
    load_mteb_folder(second, write_jsonl(tmp_path / "b" / "test.jsonl", STS_ROWS[::-1]).parent)
    assert task_data_fingerprint(first) != task_data_fingerprint(second)


# --- bad folders: one line each ------------------------------------------------------------------------

@pytest.mark.unit
def test_missing_split(tmp_path):
    folder = write_jsonl(tmp_path / "b77" / "test.jsonl", [{"text": "hi", "label": 0}]).parent
    with pytest.raises(EvalkitError, match=r"has no split 'train' for Banking77Classification \(has test"):
        load_mteb_folder(mteb_task("Banking77Classification"), folder)


@pytest.mark.unit
def test_missing_column_names_the_columns_the_task_reads(tmp_path):
    rows = [{"sentence1": r["sentence1"], "sentence_2": r["sentence2"], "score": r["score"]} for r in STS_ROWS]
    folder = write_jsonl(tmp_path / "sts" / "test.jsonl", rows).parent
    with pytest.raises(EvalkitError, match=r"split 'test' lacks column sentence2 \(STSBenchmark reads sentence1, "
                                           r"sentence2, score; has sentence1, sentence_2, score\)"):
        load_mteb_folder(mteb_task("STSBenchmark"), folder)


@pytest.mark.unit
def test_malformed_and_undecodable_lines_name_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "sts" / "test.jsonl", STS_ROWS)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([*lines[:3], lines[3][:-3], *lines[4:]]))
    with pytest.raises(EvalkitError, match=r"test.jsonl:4: malformed JSON"):
        load_mteb_folder(mteb_task("STSBenchmark"), path.parent)
    path.write_bytes(b"\n".join([*lines[:6], lines[6].replace(b"cat", b"c\xfft"), *lines[7:]]))
    with pytest.raises(EvalkitError, match=r"test.jsonl:7: text is not valid UTF-8"):
        load_mteb_folder(mteb_task("STSBenchmark"), path.parent)
    path.write_text("")
    with pytest.raises(EvalkitError, match=r"test.jsonl: the file has no rows"):
        load_mteb_folder(mteb_task("STSBenchmark"), path.parent)


@pytest.mark.unit
def test_folders_that_are_not_mteb_dataset_folders(tmp_path, small_beir):
    with pytest.raises(EvalkitError, match="data_dir does not exist"):
        load_mteb_folder(mteb_task("STSBenchmark"), tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalkitError, match=r"empty holds no split \(<split>.jsonl"):
        load_mteb_folder(mteb_task("STSBenchmark"), tmp_path / "empty")
    with pytest.raises(EvalkitError, match="is a BEIR folder, but STSBenchmark is a STS task"):
        load_mteb_folder(mteb_task("STSBenchmark"), small_beir)
    with pytest.raises(EvalkitError, match="holds no subset folder of SIB200ClusteringS2S"):
        load_mteb_folder(mteb_task("SIB200ClusteringS2S"), write_jsonl(tmp_path / "flat" / "test.jsonl", STS_ROWS).parent)


@pytest.mark.unit
def test_a_dataset_transform_that_fails_is_one_line(tmp_path):
    folder = sib200(tmp_path / "sib", subsets=("eng_Latn",))
    (folder / "eng_Latn" / "validation.jsonl").unlink()  # SIB200's transform pools train, validation and test
    with pytest.raises(EvalkitError, match=r"SIB200ClusteringS2S: loading .* as mteb does failed \(KeyError"):
        load_mteb_folder(mteb_task("SIB200ClusteringS2S"), folder)


@pytest.mark.unit
def test_tasks_that_load_their_own_way_are_refused(tmp_path):
    with pytest.raises(EvalkitError, match="TurkicClassification loads its data its own way"):
        load_mteb_folder(mteb_task("TurkicClassification"), tmp_path)


@pytest.mark.unit
def test_reranking_from_a_beir_folder_is_refused(small_beir):
    with pytest.raises(EvalkitError, match="reranks each query's candidate list"):
        task_and_data(get_task_spec("AskUbuntuDupQuestions"), small_beir)


@pytest.mark.integration
def test_cli_bad_folder_is_one_line_and_writes_nothing(tmp_path):
    folder = write_jsonl(tmp_path / "sts" / "test.jsonl", [{"sentence1": "a", "score": 1.0}]).parent
    proc = evalkit("task=STSBenchmark", "model=minilm", f"data_dir={folder}", f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, "split 'test' lacks column sentence2 (STSBenchmark reads sentence1, sentence2, score")
    assert not (tmp_path / "r").exists()
