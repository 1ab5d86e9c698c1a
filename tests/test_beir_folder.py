"""Local BEIR folders: read right, and every kind of bad input is one clear error."""

from __future__ import annotations

import logging

import pytest

from evalkit import EvalkitError
from evalkit.beir_folder import attach_to_task, read_beir_folder
from evalkit.tasks import get_mteb_task, get_task_spec

from conftest import write_beir

pytestmark = pytest.mark.unit


def test_reads_a_good_folder(small_beir):
    data = read_beir_folder(small_beir, "test")
    assert len(data.corpus) == 8 and len(data.queries) == 4
    assert data.corpus["d0"] == {"title": "About cats", "text": "A short note on cats and nothing else about cats."}
    assert data.qrels["q2"] == {"d2": 1}


def test_attach_makes_an_mteb_retrieval_task(small_beir):
    spec = get_task_spec("scifact")
    task = get_mteb_task(spec)
    attach_to_task(task, read_beir_folder(small_beir, "test"), spec.split)
    split = task.dataset["default"]["test"]
    assert task.data_loaded and split["corpus"].num_rows == 8 and split["queries"].num_rows == 4
    assert split["relevant_docs"]["q0"] == {"d0": 1}


def test_data_dir_on_a_non_retrieval_task_is_an_error(small_beir):
    task = get_mteb_task(get_task_spec("STS12"))
    with pytest.raises(EvalkitError, match="retrieval tasks only"):
        attach_to_task(task, read_beir_folder(small_beir, "test"), "test")


def test_missing_folder(tmp_path):
    with pytest.raises(EvalkitError, match="data_dir does not exist"):
        read_beir_folder(tmp_path / "nope", "test")


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_file(small_beir, missing):
    (small_beir / missing).unlink()
    with pytest.raises(EvalkitError, match=f"has no {missing}"):
        read_beir_folder(small_beir, "test")


def test_missing_split(small_beir):
    with pytest.raises(EvalkitError, match="has no qrels/dev.tsv"):
        read_beir_folder(small_beir, "dev")


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_malformed_jsonl_names_file_and_line(small_beir, name):
    path = small_beir / name
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]  # cut the closing braces
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvalkitError, match=rf"{name}:3: malformed JSON"):
        read_beir_folder(small_beir, "test")


def test_undecodable_text_names_file_and_line(small_beir):
    path = small_beir / "corpus.jsonl"
    raw = path.read_bytes().split(b"\n")
    raw[4] = raw[4].replace(b"note", b"n\xffte")
    path.write_bytes(b"\n".join(raw))
    with pytest.raises(EvalkitError, match=r"corpus.jsonl:5: text is not valid UTF-8"):
        read_beir_folder(small_beir, "test")


def test_malformed_qrels_names_the_line(small_beir):
    path = small_beir / "qrels" / "test.tsv"
    path.write_text(path.read_text() + "q3\td3\tmaybe\n")
    with pytest.raises(EvalkitError, match=r"test.tsv:6: expected 'query-id<TAB>corpus-id<TAB>integer score'"):
        read_beir_folder(small_beir, "test")


def test_empty_corpus(small_beir):
    (small_beir / "corpus.jsonl").write_text("")
    with pytest.raises(EvalkitError, match="the corpus is empty"):
        read_beir_folder(small_beir, "test")


def test_document_without_text(tmp_path):
    folder = write_beir(tmp_path / "b", {"d0": ("t", "x")}, {"q0": "y"}, [("q0", "d0", 1)])
    (folder / "corpus.jsonl").write_text('{"_id": "d0", "title": "t"}\n')
    with pytest.raises(EvalkitError, match="1 documents have no 'text' string"):
        read_beir_folder(folder, "test")


def test_partly_mismatched_qrels_are_counted(tmp_path, caplog):
    folder = write_beir(tmp_path / "b", {"d0": ("", "a"), "d1": ("", "b")}, {"q0": "x", "q1": "y"},
                        [("q0", "d0", 1), ("q1", "d9", 1), ("q7", "d1", 1)])
    with caplog.at_level(logging.WARNING):
        data = read_beir_folder(folder, "test")
    assert set(data.qrels) == {"q0", "q1"}
    assert "1 of 3 qrels query ids are not in queries.jsonl" in caplog.text
    assert "1 of 3 judged documents are not in corpus.jsonl" in caplog.text


def test_qrels_matching_nothing_is_an_error(tmp_path):
    folder = write_beir(tmp_path / "b", {"d0": ("", "a")}, {"q0": "x"}, [("q5", "d0", 1), ("q6", "d0", 1)])
    with pytest.raises(EvalkitError, match=r"no qrels match the data \(2 of 2 query ids not in queries.jsonl"):
        read_beir_folder(folder, "test")
