"""Local BEIR folders (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`) -> mteb retrieval data.

Files are read with beir's GenericDataLoader; whatever it chokes on is located here and
reported as one line naming the file and line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from evalkit import EvalkitError
from evalkit.config import TaskSpec

log = logging.getLogger(__name__)


def local_data_dir(spec: TaskSpec, data_dir: str | None, data_root: str | None) -> Path | None:
    """`data_dir`, or the task's folder under `data_root` (named by a BEIR alias or the task name), or None."""
    if data_dir is not None:
        return Path(data_dir)
    if data_root is None:
        return None
    candidates = [Path(data_root) / name for name in (*spec.aliases, spec.name)]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise EvalkitError(f"data_root {data_root} has no folder for {spec.name} "
                       f"(looked for {', '.join(c.name for c in candidates)})")


@dataclass
class BeirData:
    corpus: dict[str, dict[str, str]]  # id -> {"title", "text"}
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _first_bad_jsonl_line(path: Path) -> str:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                return f"{path}:{number}: text is not valid UTF-8 ({exc.reason} at byte {exc.start})"
            except json.JSONDecodeError as exc:
                return f"{path}:{number}: malformed JSON ({exc.msg}, column {exc.colno})"
            if not isinstance(row, dict):
                return f"{path}:{number}: expected a JSON object, got {type(row).__name__}"
    return f"{path}: unreadable"


def _first_bad_qrels_line(path: Path) -> str | None:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                cells = raw.decode("utf-8").rstrip("\r\n").split("\t")
            except UnicodeDecodeError as exc:
                return f"{path}:{number}: text is not valid UTF-8 ({exc.reason} at byte {exc.start})"
            if number == 1:
                continue  # header
            if len(cells) < 3 or not cells[2].strip().lstrip("-").isdigit():
                return f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>integer score', got {raw[:80]!r}"
    return None


def read_beir_folder(folder: str | Path, split: str) -> BeirData:
    """Read and check a BEIR folder; raise EvalkitError naming the first problem."""
    from beir.datasets.data_loader import GenericDataLoader

    root = Path(folder)
    if not root.is_dir():
        raise EvalkitError(f"data_dir does not exist or is not a folder: {root}")
    corpus_file, query_file, qrels_file = root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / f"{split}.tsv"
    for path in (corpus_file, query_file, qrels_file):
        if not path.is_file():
            raise EvalkitError(f"data_dir {root} has no {path.relative_to(root)}")

    loader = GenericDataLoader(data_folder=str(root))
    for path, load in ((corpus_file, loader.load_corpus), (query_file, lambda: loader.load(split=split))):
        try:
            load()
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError):
            raise EvalkitError(_first_bad_jsonl_line(path)) from None
        except (IndexError, ValueError):  # a bad qrels row, or beir logging the first item of an empty dict
            problem = _first_bad_qrels_line(qrels_file) if path == query_file else None
            if problem:
                raise EvalkitError(problem) from None
        except KeyError:
            pass  # qrels name queries that queries.jsonl lacks: counted below with the other mismatches
    return _checked(root, loader.corpus, loader.queries, loader.qrels)


def _checked(root: Path, raw_corpus: dict, raw_queries: dict, qrels: dict) -> BeirData:
    if not raw_corpus:
        raise EvalkitError(f"{root / 'corpus.jsonl'}: the corpus is empty")
    if None in raw_corpus or None in raw_queries:
        which = "corpus.jsonl" if None in raw_corpus else "queries.jsonl"
        raise EvalkitError(f"{root / which}: a line has no '_id'")
    no_text = sum(1 for doc in raw_corpus.values() if not isinstance(doc.get("text"), str))
    if no_text:
        raise EvalkitError(f"{root / 'corpus.jsonl'}: {no_text} documents have no 'text' string")
    if any(not isinstance(text, str) for text in raw_queries.values()):
        raise EvalkitError(f"{root / 'queries.jsonl'}: some queries have no 'text' string")
    if not qrels:
        raise EvalkitError(f"{root}: the qrels file has no judgements")
    corpus = {str(k): {"title": v.get("title") or "", "text": v["text"]} for k, v in raw_corpus.items()}
    missing_q = [q for q in qrels if q not in raw_queries]
    pairs = [(q, d) for q, docs in qrels.items() for d in docs]
    missing_d = sum(1 for _, d in pairs if d not in corpus)
    if len(missing_q) == len(qrels) or missing_d == len(pairs):
        raise EvalkitError(
            f"{root}: no qrels match the data ({len(missing_q)} of {len(qrels)} query ids not in queries.jsonl, "
            f"{missing_d} of {len(pairs)} judged documents not in corpus.jsonl)"
        )
    if missing_q or missing_d:
        log.warning("%s: %d of %d qrels query ids are not in queries.jsonl (dropped); %d of %d judged documents "
                    "are not in corpus.jsonl (kept as relevant, never retrieved)",
                    root, len(missing_q), len(qrels), missing_d, len(pairs))
    kept = {q: docs for q, docs in qrels.items() if q in raw_queries}
    queries = {q: raw_queries[q] for q in kept}
    return BeirData(corpus=corpus, queries=queries, qrels=kept)


def attach_to_task(task, data: BeirData, split: str, subset: str = "default") -> None:
    """Put the data on an mteb retrieval task and mark it loaded, so mteb scores it as usual."""
    from datasets import Dataset
    from mteb.abstasks import AbsTaskRetrieval

    if not isinstance(task, AbsTaskRetrieval):
        raise EvalkitError(f"data_dir works for retrieval tasks only; {task.metadata.name} is {task.metadata.type}")
    ids = list(data.corpus)
    corpus = Dataset.from_dict({
        "id": ids,
        "title": [data.corpus[i]["title"] for i in ids],
        "text": [data.corpus[i]["text"] for i in ids],
    })
    queries = Dataset.from_dict({"id": list(data.queries), "text": list(data.queries.values())})
    task.dataset = {subset: {split: {"corpus": corpus, "queries": queries, "relevant_docs": data.qrels,
                                     "top_ranked": None}}}
    task.data_loaded = True
