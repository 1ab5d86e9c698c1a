"""Shared fixtures: offline always, one tiny model per session, small BEIR folders on demand."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("EVALKIT_CACHE", tempfile.mkdtemp(prefix="evalkit-test-cache-"))  # never the user's cache

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
if str(REPO) not in sys.path:  # benchmarks/ helpers (random model folders) under plain `pytest` too
    sys.path.append(str(REPO))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-data checks need ../shared beside the checkout")
    return path


@pytest.fixture(scope="session")
def tiny_encoder():
    """The tiny random Mistral with the real Mistral-7B tokenizer, built once per session."""
    from evalkit.encoding.encoder import load_encoder

    return load_encoder("tiny_mistral")


def write_beir(folder: Path, corpus: dict, queries: dict, qrels: list[tuple[str, str, int]], split: str = "test") -> Path:
    """A BEIR folder: corpus {id: (title, text)}, queries {id: text}, qrels rows."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as fh:
        for doc_id, (title, text) in corpus.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text, "metadata": {}}) + "\n")
    with (folder / "queries.jsonl").open("w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


TOPICS = ["cats", "rivers", "volcanoes", "chess", "bread", "comets", "violins", "glaciers"]


@pytest.fixture
def small_beir(tmp_path: Path) -> Path:
    """Eight documents, four queries, one relevant document each."""
    corpus = {f"d{i}": (f"About {t}", f"A short note on {t} and nothing else about {t}.") for i, t in enumerate(TOPICS)}
    queries = {f"q{i}": f"Tell me about {TOPICS[i]}" for i in range(4)}
    qrels = [(f"q{i}", f"d{i}", 1) for i in range(4)]
    return write_beir(tmp_path / "small", corpus, queries, qrels)
