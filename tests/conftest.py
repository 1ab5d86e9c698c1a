"""Shared fixtures and the test tiers: offline always, a cache of the session's own, one tiny model per session,
small BEIR folders on demand, and exactly one tier marker (unit, integration, realdata, gpu) on every test."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# never the user's cache, even one they exported: the session's own, removed when the session ends
TEST_CACHE = tempfile.mkdtemp(prefix="evalkit-test-cache-")
os.environ["EVALKIT_CACHE"] = TEST_CACHE

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
if str(REPO) not in sys.path:  # benchmarks/ helpers (random model folders) under plain `pytest` too
    sys.path.append(str(REPO))

TIERS = ("unit", "integration", "realdata", "gpu")  # declared in pyproject.toml; docs/development.md says which runs when


def pytest_addoption(parser):
    group = parser.getgroup("evalkit")
    group.addoption("--require-shared", action="store_true",
                    help="a test whose ../shared data is absent fails instead of skipping (on when CI=true)")
    group.addoption("--gate-results", metavar="DIR",
                    help="the results folder of a finished `python -m evalkit.check suite=ci` run: the reproduction "
                         "tests assert the published numbers on its SciFact/NFCorpus results instead of scoring again")


REQUIRE_SHARED = False  # set from the command line and the environment


def pytest_configure(config):
    global REQUIRE_SHARED
    REQUIRE_SHARED = (config.getoption("--require-shared")
                      or os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"))


def pytest_unconfigure(config):
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before -m deselects: every collected test is checked, whatever the selection
def pytest_collection_modifyitems(config, items):
    wrong = []
    for item in items:
        tiers = sorted({m.name for m in item.iter_markers() if m.name in TIERS})
        if len(tiers) != 1:
            wrong.append(f"{item.nodeid}: {', '.join(tiers) or 'no tier'}")
    if wrong:
        raise pytest.UsageError(f"every test needs exactly one tier marker ({', '.join(TIERS)}; see "
                                f"docs/development.md), {len(wrong)} do not:\n  " + "\n  ".join(wrong))



def shared_path(*parts: str) -> Path:
    """A path under ../shared; when it is absent the test skips with the reason, or fails under CI
    (CI=true or --require-shared), where a skipped real-data check would show a green suite that tested nothing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"{path} is absent: the real-data checks need ../shared beside the checkout"
        if REQUIRE_SHARED:
            pytest.fail(reason + " (required under CI)", pytrace=False)
        pytest.skip(reason)
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


def scifact_slice(folder: Path, queries: int = 40, documents: int = 300) -> Path:
    """The first `queries` test queries of the real SciFact with their relevant documents, filled up to `documents`
    in corpus order: small enough for a subprocess run in seconds, real enough for every code path."""
    source = shared_path("data", "beir", "scifact")
    pairs = [line.split("\t") for line in (source / "qrels" / "test.tsv").read_text().splitlines()[1:] if line]
    chosen = list(dict.fromkeys(q for q, _, _ in pairs))[:queries]
    qrels = [(q, d, int(s)) for q, d, s in pairs if q in chosen]
    wanted = {d for _, d, _ in qrels}
    corpus = {}
    for line in (source / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        if doc["_id"] in wanted or len(corpus) < documents - len(wanted):
            corpus[doc["_id"]] = (doc.get("title", ""), doc["text"])
    texts = {q["_id"]: q["text"] for q in map(json.loads, (source / "queries.jsonl").read_text().splitlines())}
    return write_beir(folder, corpus, {q: texts[q] for q in chosen}, qrels)


@pytest.fixture(scope="session")
def scifact_300(tmp_path_factory) -> Path:
    """A 300-document SciFact slice (40 queries), built once per session from ../shared."""
    return scifact_slice(tmp_path_factory.mktemp("scifact") / "scifact_300")


@pytest.fixture
def small_beir(tmp_path: Path) -> Path:
    """Eight documents, four queries, one relevant document each."""
    corpus = {f"d{i}": (f"About {t}", f"A short note on {t} and nothing else about {t}.") for i, t in enumerate(TOPICS)}
    queries = {f"q{i}": f"Tell me about {TOPICS[i]}" for i in range(4)}
    qrels = [(f"q{i}", f"d{i}", 1) for i in range(4)]
    return write_beir(tmp_path / "small", corpus, queries, qrels)
