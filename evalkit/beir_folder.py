"""Local BEIR folders (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`) -> mteb retrieval data.

evalkit reads the files itself (a few lines of json and csv) rather than with beir's GenericDataLoader,
which skips the first qrels line unconditionally and lets the last of two same ids win: every problem that
would change a score is one line naming the file (and line), or a warning where the data is unambiguous.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
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


QRELS_ROW = "expected 'query-id<TAB>corpus-id<TAB>integer score'"
SHOWN = 5  # ids named in a duplicate error


def _lines(path: Path):
    """(line number, text) of every non-blank line; undecodable bytes are one error naming file:line."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EvalkitError(f"{path}:{number}: text is not valid UTF-8 ({exc.reason} at byte {exc.start})"
                                   ) from exc
            if text.strip():
                yield number, text


def json_objects(path: Path):
    """(line number, object) per non-blank line of a jsonl file; the first line that is not a JSON object (or
    not UTF-8) is one error naming file:line."""
    for number, text in _lines(path):
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalkitError(f"{path}:{number}: malformed JSON ({exc.msg}, column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise EvalkitError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _jsonl(path: Path):
    """(line number, id, object) per line of a BEIR jsonl file; the first bad line is one error."""
    for number, row in json_objects(path):
        key = row.get("_id")
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise EvalkitError(f"{path}:{number}: no '_id' string" + ("" if key is None else f" (got {key!r})"))
        yield number, str(key), row


def _texts(path: Path, plural: str, thing: str, value) -> dict:
    """{id: value(path, line, row)} of a BEIR jsonl file; `value` gives None for a row without a 'text' string."""
    rows, no_text = [], []
    for number, key, row in _jsonl(path):
        item = value(path, number, row)
        if item is None:
            no_text.append(number)
        else:
            rows.append((number, key, item))
    if no_text:
        raise EvalkitError(f"{path}: {len(no_text)} {plural} have no 'text' string (first at line {no_text[0]})")
    return _unique(path, rows, f"{thing} id", "text")


def _document(path: Path, number: int, row: dict) -> dict[str, str] | None:
    title = row.get("title")
    if title is not None and not isinstance(title, str):
        raise EvalkitError(f"{path}:{number}: 'title' must be a string, got {type(title).__name__} {title!r:.40}")
    return {"title": title or "", "text": row["text"]} if isinstance(row.get("text"), str) else None


def _query(path: Path, number: int, row: dict) -> str | None:
    return row["text"] if isinstance(row.get("text"), str) else None


def _unique(path: Path, rows, thing: str, differ: str) -> dict:
    """{key: value} from (line, key, value) rows. A key repeated with another value is an error naming the
    first few keys and their lines; repeated with the same value, one warning and the key is used once."""
    out, first, repeats, conflicts = {}, {}, 0, {}
    for number, key, value in rows:
        if key not in out:
            out[key], first[key] = value, number
        elif out[key] == value:
            repeats += 1
        else:
            conflicts.setdefault(key, [first[key]]).append(number)
    if conflicts:
        shown = "; ".join(f"{'/'.join(key) if isinstance(key, tuple) else key} (lines {', '.join(map(str, lines))})"
                          for key, lines in list(conflicts.items())[:SHOWN])
        more = f"; and {len(conflicts) - SHOWN} more" if len(conflicts) > SHOWN else ""
        raise EvalkitError(f"{path}: {len(conflicts)} {thing}s appear more than once with different {differ}: "
                           f"{shown}{more}")
    if repeats:
        log.warning("%s: %d lines repeat an earlier %s with identical %s; each is used once", path, repeats, thing, differ)
    return out


def _is_int(cell: str) -> bool:
    return re.fullmatch(r"\s*-?[0-9]+\s*", cell) is not None


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    """The qrels TSV. The first line is a header only when its third field is not an integer (beir skips the
    first line unconditionally, dropping a judgement from a file without a header)."""
    rows = []
    for index, (number, text) in enumerate(_lines(path)):
        cells = text.rstrip("\r\n").split("\t")
        if len(cells) >= 3 and _is_int(cells[2]):
            rows.append((number, (cells[0], cells[1]), int(cells[2])))
        elif not (index == 0 and len(cells) >= 3):
            raise EvalkitError(f"{path}:{number}: {QRELS_ROW}, got {text.encode('utf-8')[:80]!r}")
    pairs = _unique(path, rows, "(query, document) pair", "scores")
    qrels: dict[str, dict[str, int]] = {}
    for (query, doc), score in pairs.items():
        qrels.setdefault(query, {})[doc] = score
    return qrels


def read_beir_folder(folder: str | Path, split: str) -> BeirData:
    """Read and check a BEIR folder; raise EvalkitError naming the first problem."""
    root = Path(folder)
    if not root.is_dir():
        raise EvalkitError(f"data_dir does not exist or is not a folder: {root}")
    corpus_file, query_file, qrels_file = root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / f"{split}.tsv"
    for path in (corpus_file, query_file, qrels_file):
        if not path.is_file():
            raise EvalkitError(f"data_dir {root} has no {path.relative_to(root)}")
    corpus = _texts(corpus_file, "documents", "document", _document)
    queries = _texts(query_file, "queries", "query", _query)
    return _checked(root, corpus, queries, _qrels(qrels_file), qrels_file)


def _checked(root: Path, corpus: dict, raw_queries: dict, qrels: dict, qrels_file: Path) -> BeirData:
    if not corpus:
        raise EvalkitError(f"{root / 'corpus.jsonl'}: the corpus is empty")
    if not qrels:
        raise EvalkitError(f"{root}: the qrels file has no judgements")
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
    if not any(score > 0 for docs in kept.values() for score in docs.values()):
        raise EvalkitError(f"{qrels_file}: no positive judgement (all {sum(map(len, kept.values()))} scores of the "
                           f"evaluated queries are 0 or less), so every score would be 0")
    queries = {q: raw_queries[q] for q in kept}
    return BeirData(corpus=corpus, queries=queries, qrels=kept)


def beir_data_fingerprint(data: BeirData) -> str:
    """sha256 (16 hex digits) of the data as evaluated: the corpus in file order (order can break ties), the
    evaluated queries and the judgements sorted. Another serialisation of the same data (key order, escaping,
    metadata, extra queries) gives the same fingerprint; any change to a text, id or judgement another."""
    h = hashlib.sha256()
    for key, doc in data.corpus.items():
        h.update(json.dumps(["d", key, doc["title"], doc["text"]], ensure_ascii=False).encode("utf-8") + b"\n")
    for key in sorted(data.queries):
        h.update(json.dumps(["q", key, data.queries[key]], ensure_ascii=False).encode("utf-8") + b"\n")
    for query in sorted(data.qrels):
        for doc, score in sorted(data.qrels[query].items()):
            h.update(json.dumps(["r", query, doc, score], ensure_ascii=False).encode("utf-8") + b"\n")
    return "sha256:" + h.hexdigest()[:16]


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
