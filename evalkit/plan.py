"""`python -m evalkit plan suite=mteb_eng [model=...] [tokens_per_s=...] [data_root=...]`: size a job first.

Per task: texts and tokens to encode, and GPU-hours at a given throughput. Counts come from a local BEIR
folder when one is found under data_root (exact: the model's tokenizer, instruction and truncation
included), else from the dataset statistics mteb publishes for each task (characters; tokens estimated).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from evalkit import EvalkitError
from evalkit.config import ModelConfig, TaskSpec, load_model_config
from evalkit.data import local_data_dir
from evalkit.encoding.prompt import render
from evalkit.instructions import resolve_instruction
from evalkit.tasks import get_task_spec, suite_task_names

# Characters per token of the Mistral-7B tokenizer on English BEIR corpora, measured with this repo on
# the first 3,000 documents of SciFact (3.95), NFCorpus (3.91) and ArguAna (4.53).
CHARS_PER_TOKEN = 4.1


LEGEND = ("source: local = the local folder's texts, counted with the model's tokenizer;\n"
          f"        local~ = the local folder's texts, tokens estimated as characters / {CHARS_PER_TOKEN} (the model's "
          "tokenizer is not on this machine, and plan never downloads);\n"
          "        mteb stats = estimated from the dataset statistics mteb publishes")


@dataclass
class TaskPlan:
    task: str
    source: str  # "local" or "mteb stats"
    texts: int
    tokens: int

    def hours(self, tokens_per_s: float) -> float:
        return self.tokens / tokens_per_s / 3600


def _stats_file(mteb_name: str) -> Path | None:
    root = Path(importlib.util.find_spec("mteb").submodule_search_locations[0]) / "descriptive_stats"
    matches = sorted(root.glob(f"*/{mteb_name}.json"))
    return matches[0] if matches else None


def _split_counts(stats: dict, split: str, subset: str) -> tuple[int, int]:
    """(texts, characters) of one split, one subset, from an mteb descriptive-stats file."""
    entry = stats.get(split) or {}
    entry = (entry.get("hf_subset_descriptive_stats") or {}).get(subset, entry)
    text_stats = [v for k, v in entry.items() if k.endswith("_statistics") and isinstance(v, dict)
                  and "total_text_length" in v]
    chars = entry.get("number_of_characters") or sum(v["total_text_length"] for v in text_stats)
    texts = sum(v.get("unique_texts", 0) for v in text_stats) or entry.get("num_samples", 0)
    return int(texts), int(chars)


def _instruction_tokens(spec: TaskSpec, model: ModelConfig) -> int:
    """Tokens the model's prompt template adds around a text (estimated from its characters)."""
    return round(len(render([""], model.prompt, spec, spec.type, "query")[0]) / CHARS_PER_TOKEN)


def plan_from_stats(spec: TaskSpec, model: ModelConfig) -> TaskPlan:
    import mteb

    task = mteb.get_task(spec.mteb_task)
    names = [t.metadata.name for t in getattr(task.metadata, "tasks", None) or []] or [spec.mteb_task]
    splits = [spec.split] + (["train"] if spec.type == "Classification" else [])  # a train sample is encoded too
    texts = tokens = 0
    for name in names:
        path = _stats_file(name)
        if path is None:
            raise EvalkitError(f"mteb publishes no statistics for {name}; pass data_root with a local copy")
        stats = json.loads(path.read_text())
        for split in splits:
            n, chars = _split_counts(stats, split, spec.hf_subset)
            per_text = min(chars / max(n, 1) / CHARS_PER_TOKEN + 2, model.max_length)  # + BOS/EOS, truncated
            texts += n
            tokens += int(n * per_text)
    if model.prompt is not None:
        tokens += texts * _instruction_tokens(spec, model)  # an upper bound: retrieval documents get none
    return TaskPlan(spec.name, "mteb stats", texts, tokens)


def plan_from_folder(spec: TaskSpec, model: ModelConfig, folder: Path) -> TaskPlan:
    """Exact counts from a local folder: the texts mteb hands the encoder, rendered and tokenized by the
    encoder's own functions (the model's tokenizer; characters estimate it where that is not here)."""
    from mteb.types import PromptType

    from evalkit.data import attach_to_task, read_beir_folder
    from evalkit.encoding.encoder import loader_texts
    from evalkit.encoding.model import load_tokenizer, token_ids
    from evalkit.search import retrieval_loader
    from evalkit.tasks import get_mteb_task

    task = get_mteb_task(spec)
    attach_to_task(task, read_beir_folder(folder, spec.split), spec.split, spec.hf_subset)
    data = task.dataset[spec.hf_subset][spec.split]
    texts = []
    for part, side, prompt_type in (("corpus", "document", PromptType.document), ("queries", "query", PromptType.query)):
        raw = loader_texts(retrieval_loader(data[part], task.metadata, prompt_type))
        texts += render(raw, model.prompt, spec, spec.type, side)
    try:
        tokens = sum(len(ids) for ids in token_ids(load_tokenizer(model, local_only=True), texts, model))
        source = "local"
    except EvalkitError:  # the model's tokenizer is not on this machine (plan never downloads): estimate
        tokens = sum(min(len(t) / CHARS_PER_TOKEN + 2, model.max_length) for t in texts)
        source = "local~"
    return TaskPlan(spec.name, source, len(texts), int(tokens))


def make_plan(suite: str, model: str, data_root: str | None) -> list[TaskPlan]:
    cfg = load_model_config(model)
    plans = []
    for name in suite_task_names(suite):
        spec = get_task_spec(name)
        if cfg.prompt is not None:
            spec, _ = resolve_instruction(spec)
        folder = _local_folder(spec, data_root) if spec.type == "Retrieval" else None  # exact counts: BEIR folders
        plans.append(plan_from_folder(spec, cfg, folder) if folder else plan_from_stats(spec, cfg))
    return plans


def _local_folder(spec: TaskSpec, data_root: str | None) -> Path | None:
    """The task's folder under data_root, or None: a task without one is counted from mteb's statistics."""
    if data_root is None:
        return None
    try:
        return local_data_dir(spec, None, data_root)
    except EvalkitError:
        return None


def main(argv: list[str]) -> None:
    """Arguments as key=value: suite (or task), model, tokens_per_s, data_root."""
    pairs = [arg.split("=", 1) for arg in argv if "=" in arg]
    args = dict(pairs)
    allowed = {"suite", "task", "model", "tokens_per_s", "data_root"}
    if len(pairs) != len(argv) or len(args) != len(pairs) or not set(args) <= allowed:  # bare words, repeats, unknown keys
        raise EvalkitError(f"plan takes key=value arguments suite|task, model, tokens_per_s, data_root; got {argv}")
    suite = args.get("suite") or args.get("task") or "mteb_eng"
    tokens_per_s = float(args.get("tokens_per_s", 25_000))
    plans = make_plan(suite, args.get("model", "e5_mistral_7b"), args.get("data_root"))
    print(f"{'task':<40} {'source':<10} {'texts':>12} {'tokens':>15} {'GPU-hours':>10}")
    for p in plans:
        print(f"{p.task:<40} {p.source:<10} {p.texts:>12,} {p.tokens:>15,} {p.hours(tokens_per_s):>10.2f}")
    total = sum(p.tokens for p in plans)
    print(f"{'total':<40} {'':<10} {sum(p.texts for p in plans):>12,} {total:>15,} "
          f"{total / tokens_per_s / 3600:>10.2f}")
    print(f"at {tokens_per_s:,.0f} tokens/s per GPU; divide by the number of GPUs for wall time")
    print(LEGEND)
