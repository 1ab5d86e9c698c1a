"""Which texts a task hands the encoder, and which of them another task of a suite has encoded already.

The embedding cache is content-addressed by the rendered text, so a text two tasks share is encoded once
(`encode.cache`, on by default). `plan` counts that way and a suite run orders its tasks so that tasks
sharing texts run one after the other. A task's texts come in sets (a corpus, its queries, a sentence
column), each with the statistics mteb publishes for it: distinct texts, total, shortest and longest length
in characters. Two sets are the same texts

  exactly    when both were read from local folders: the rendered texts' hashes are compared;
  estimated  otherwise, when their statistics agree: the same shortest and longest text, and the number of
             texts and of characters within 0.1% (FEVER's and ClimateFEVER's 5.4M-document corpora: both
             longest 374,597 characters, 5,416,568 vs 5,416,593 documents). The smaller set is counted as
             contained in the larger.

and a set's texts render alike in two tasks only when the same instruction goes around them (`prefix`): the
e5 protocol instructs classification inputs per task, so the same sentences under two instructions are two
sets of texts, while retrieval corpora (no instruction) are shared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

SENTINEL = "\x00"  # rendered in place of a text: what remains is the instruction around it
SAME_WITHIN = 0.001  # statistics within 0.1%: the same set of texts
MIN_SHARED_TEXTS = 100  # smaller sets are not matched by statistics (too easily alike by chance)


@dataclass
class TextSet:
    task: str  # CLI name
    part: str  # documents, queries, texts, ... (the statistics' name for it)
    prefix: str  # the set's rendering of SENTINEL: the instruction around every text of it
    texts: int  # distinct texts
    tokens: int  # their tokens
    chars: int  # characters of the distinct raw texts
    shortest: int
    longest: int
    keys: np.ndarray | None = None  # local: a 64-bit hash per distinct rendered text, sorted
    key_tokens: np.ndarray | None = None  # local: the tokens of each, aligned with keys

    @property
    def exact(self) -> bool:
        return self.keys is not None


def from_texts(task: str, part: str, raw: list[str], rendered: list[str], tokens: list[int], prefix: str) -> TextSet:
    """A set read from a local folder: distinct rendered texts by hash, exact."""
    hashes = np.fromiter((int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
                          for t in rendered), dtype=np.uint64, count=len(rendered))
    keys, first = np.unique(hashes, return_index=True)
    distinct_raw = list(dict.fromkeys(raw))
    lengths = [len(t) for t in distinct_raw] or [0]
    return TextSet(task, part, prefix, len(keys), int(np.asarray(tokens, dtype=np.int64)[first].sum()),
                   sum(lengths), min(lengths), max(lengths), keys, np.asarray(tokens, dtype=np.int64)[first])


def alike(a: TextSet, b: TextSet) -> bool:
    """Whether the statistics of two sets say they are the same texts (up to SAME_WITHIN)."""
    def near(x: int, y: int) -> bool:
        return abs(x - y) <= SAME_WITHIN * max(x, y)

    return (min(a.texts, b.texts) >= MIN_SHARED_TEXTS and a.shortest == b.shortest and a.longest == b.longest
            and near(a.texts, b.texts) and near(a.chars, b.chars))


def estimated_overlap(a: TextSet, b: TextSet) -> tuple[int, int]:
    """(texts, tokens) of b that a holds, by statistics: the smaller set inside the larger, or nothing."""
    if a.prefix != b.prefix or not alike(a, b):
        return 0, 0
    return min(a.texts, b.texts), min(a.tokens, b.tokens)


def describe(a: TextSet, b: TextSet) -> str:
    return (f"estimated: mteb's statistics agree: longest {b.longest:,} characters, {a.texts:,} vs {b.texts:,} "
            f"texts, characters within {SAME_WITHIN:.1%}")


@dataclass
class Sharing:
    """What a task still encodes once the tasks before it in the run have: texts, tokens, and why not more."""

    texts: int
    tokens: int
    notes: list[str] = field(default_factory=list)


def count_new(task_sets: dict[str, list[TextSet]]) -> dict[str, Sharing]:
    """Per task (in the given order): the texts and tokens no earlier set holds."""
    seen_keys: dict[str, np.ndarray] = {}  # prefix -> hashes of every exact set so far
    earlier: list[TextSet] = []
    out: dict[str, Sharing] = {}
    for task, sets in task_sets.items():
        share = Sharing(0, 0)
        for s in sets:
            texts, tokens, note = s.texts, s.tokens, None
            if s.exact and s.prefix in seen_keys:
                held = np.isin(s.keys, seen_keys[s.prefix], assume_unique=True)
                if held.any():
                    texts, tokens = int((~held).sum()), int(s.key_tokens[~held].sum())
                    note = f"{s.part}: {int(held.sum()):,} texts already encoded by an earlier task (exact: local folders)"
            candidates = [e for e in earlier if not (s.exact and e.exact)]  # exact pairs: compared by hash above
            best = max(candidates, key=lambda e: estimated_overlap(e, s)[1], default=None)
            if best is not None:
                o_texts, o_tokens = estimated_overlap(best, s)
                if o_tokens > s.tokens - tokens:
                    texts, tokens = s.texts - o_texts, s.tokens - o_tokens
                    note = f"{s.part}: {o_texts:,} texts already encoded for {best.task} ({describe(best, s)})"
            share.texts += texts
            share.tokens += tokens
            if note:
                share.notes.append(note)
            earlier.append(s)
            if s.exact:
                seen_keys[s.prefix] = np.union1d(seen_keys.get(s.prefix, np.zeros(0, np.uint64)), s.keys)
        out[task] = share
    return out


def run_order(task_sets: dict[str, list[TextSet]]) -> list[str]:
    """The tasks with those that share texts (by statistics, whatever the instruction) one after the other:
    each group where its first member stood, its members in their given order."""
    names = list(task_sets)
    group = {name: name for name in names}

    def root(name: str) -> str:
        while group[name] != name:
            name = group[name]
        return name

    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if any(alike(x, y) for x in task_sets[a] for y in task_sets[b]):
                group[root(b)] = root(a)
    order: list[str] = []
    for name in names:
        if name not in order:
            order += [n for n in names if root(n) == root(name)]
    return order
