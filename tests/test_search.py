"""Bounded-memory exact search gives mteb's results: same top-k, same scores, same nDCG@10."""

from __future__ import annotations

import json
import mteb
import numpy as np
import pytest
import torch

from evalkit.config import EncodeConfig, load_model_config
from evalkit.beir_folder import attach_to_task, read_beir_folder
from evalkit.encoding.encoder import Encoder
from evalkit.search import ExactSearch, RunningTopK
from evalkit.tasks import get_mteb_task, get_task_spec


WORDS = "cats rivers volcanoes chess bread comets violins glaciers tides maps salt owls".split()


def write_corpus(folder, n_docs: int = 60, n_queries: int = 9):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    (folder / "qrels").mkdir()
    with (folder / "corpus.jsonl").open("w") as fh:
        for i in range(n_docs):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 40))))
            fh.write(json.dumps({"_id": f"d{i}", "title": f"title {i}", "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as fh:
        for i in range(n_queries):
            fh.write(json.dumps({"_id": f"q{i}", "text": " ".join(rng.choice(WORDS, size=4))}) + "\n")
    rows = [f"q{i}\td{j}\t1" for i in range(n_queries) for j in rng.choice(n_docs, size=3, replace=False)]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def encoder():
    return Encoder(load_model_config("tiny_mistral"), encode=EncodeConfig(cache=False, show_progress=False))


def loaded_task(folder):
    spec = get_task_spec("scifact")
    task = get_mteb_task(spec)
    attach_to_task(task, read_beir_folder(folder, spec.split), spec.split, spec.hf_subset)
    return task


@pytest.mark.unit
def test_running_top_k_equals_the_full_score_matrix():
    gen = torch.Generator().manual_seed(0)
    queries, docs = torch.randn(37, 16, generator=gen), torch.randn(503, 16, generator=gen)
    full = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(docs, dim=1).T
    expected_values, expected_index = full.topk(10, dim=1)
    for chunk, score_bytes in [(503, 1 << 20), (50, 4 * 60), (7, 1)]:  # down to one query row per block
        best = RunningTopK(queries.numpy(), 10, torch.device("cpu"), score_bytes)
        for start in range(0, len(docs), chunk):
            best.add(docs[start:start + chunk].numpy(), offset=start)
        values, index = best.result()
        assert index == expected_index.tolist()
        np.testing.assert_allclose(values, expected_values.numpy(), atol=1e-6)
    small = RunningTopK(queries[:2].numpy(), 1000, torch.device("cpu"))
    small.add(docs[:5].numpy(), offset=0)
    assert len(small.result()[1][0]) == 5  # fewer documents than k: all of them, like mteb


@pytest.mark.integration
def test_search_results_and_scores_equal_mtebs(encoder, tmp_path):
    folder = write_corpus(tmp_path / "beir")
    theirs = mteb.evaluate(encoder, loaded_task(folder), cache=None, overwrite_strategy="always",
                           show_progress_bar=False).task_results[0]
    ours = mteb.evaluate(ExactSearch(encoder, corpus_chunk_size=7, score_bytes=64), loaded_task(folder), cache=None,
                         overwrite_strategy="always", show_progress_bar=False).task_results[0]
    theirs_scores, our_scores = theirs.scores["test"][0], ours.scores["test"][0]
    assert our_scores["ndcg_at_10"] == pytest.approx(theirs_scores["ndcg_at_10"], abs=1e-6)
    for metric, value in theirs_scores.items():
        if isinstance(value, float) and metric.split("_at_")[0] in ("ndcg", "map", "recall", "precision", "mrr"):
            assert our_scores[metric] == pytest.approx(value, abs=1e-6), metric


@pytest.mark.integration
def test_search_dict_equals_mtebs_wrapper(encoder, tmp_path):
    from mteb.models.search_wrappers import SearchEncoderWrapper

    task = loaded_task(write_corpus(tmp_path / "beir", n_docs=40))
    split = task.dataset["default"]["test"]
    where = dict(task_metadata=task.metadata, hf_split="test", hf_subset="default")
    results = []
    for searcher in (SearchEncoderWrapper(encoder, corpus_chunk_size=9), ExactSearch(encoder, corpus_chunk_size=9)):
        searcher.index(split["corpus"], encode_kwargs={"batch_size": 8}, num_proc=None, **where)
        results.append(searcher.search(split["queries"], top_k=5, encode_kwargs={"batch_size": 8}, num_proc=None,
                                       **where))
    theirs, ours = results
    assert set(ours) == set(theirs)
    for qid in theirs:
        assert set(ours[qid]) == set(theirs[qid])
        for doc, score in theirs[qid].items():
            assert ours[qid][doc] == pytest.approx(score, abs=1e-6)
