"""`python -m evalkit plan suite=mteb_eng [model=...] [tokens_per_s=...] [data_root=...] [results_dir=...]
[device=...]`: size a job first.

Per task, in the order a suite run takes them: texts and tokens the task asks for, the tokens left to encode
once each distinct text is encoded once across the suite (`textsets`: the embedding cache serves the rest),
and the hours on one device at a rate (CPU-hours when the rate was measured on a CPU). Counts come from a
local BEIR folder when one is found under data_root (exact: the model's tokenizer, instruction and truncation
included), else from the dataset statistics mteb publishes for each task (characters; tokens estimated). The rate is `tokens_per_s=`, else measured: the run records under
`results_dir` of the same model and dtype on the same device (this machine's, or `device=`), leaving out runs
that spent longer calibrating their CPU batch size than encoding, else a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from evalkit import EvalkitError
from evalkit.config import ModelConfig, TaskSpec, load_model_config
from evalkit.beir_folder import local_data_dir
from evalkit.encoding.prompt import render
from evalkit.instructions import resolve_instruction
from evalkit.tasks import get_task_spec, suite_task_names
from evalkit.textsets import SENTINEL, Sharing, TextSet, count_new, from_texts, run_order

# Characters per token of the Mistral-7B tokenizer on English BEIR corpora, measured with this repo on
# the first 3,000 documents of SciFact (3.95), NFCorpus (3.91) and ArguAna (4.53).
CHARS_PER_TOKEN = 4.1


DEFAULT_TOKENS_PER_S = 25_000  # when neither tokens_per_s= nor a matching run record says otherwise (a GPU's)

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
    sets: list[TextSet] = field(default_factory=list)  # the task's texts, set by set (for sharing)
    new: Sharing | None = None  # what is left to encode after the tasks before it in the run

    @property
    def to_encode(self) -> int:
        return self.tokens if self.new is None else self.new.tokens

    def hours(self, tokens_per_s: float) -> float:
        return self.to_encode / tokens_per_s / 3600


def _text_stats(stats: dict, split: str, subset: str) -> dict[str, dict]:
    """Part name (documents, queries, text, ...) -> its text statistics, for one split and subset of an mteb
    descriptive-stats file."""
    entry = stats.get(split) or {}
    entry = (entry.get("hf_subset_descriptive_stats") or {}).get(subset, entry)
    return {k.removesuffix("_statistics").removesuffix("_text"): v for k, v in entry.items()
            if k.endswith("_statistics") and isinstance(v, dict) and "total_text_length" in v}


def _prefix(spec: TaskSpec, model: ModelConfig, side: str) -> str:
    """What the model reads around a text of this side: the instruction, or nothing."""
    return render([SENTINEL], model, spec, spec.type, side)[0]


def _prefix_tokens(prefix: str) -> int:
    return round(len(prefix.replace(SENTINEL, "")) / CHARS_PER_TOKEN)


def plan_from_stats(spec: TaskSpec, model: ModelConfig) -> TaskPlan:
    import mteb

    task = mteb.get_task(spec.mteb_task)
    subtasks = list(getattr(task.metadata, "tasks", None) or []) or [task]
    names = [sub.metadata.name for sub in subtasks]
    splits = [spec.split] + (["train"] if spec.type == "Classification" else [])  # a train sample is encoded too
    sets = []
    for sub, name in zip(subtasks, names):
        stats = sub.metadata.descriptive_stats  # mteb's published statistics (None: it has none)
        if stats is None:
            raise EvalkitError(f"mteb publishes no statistics for {name}; pass data_root with a local copy")
        for split in splits:
            for part, st in _text_stats(stats, split, spec.hf_subset).items():
                n, chars = int(st.get("unique_texts") or 0), int(st["total_text_length"])
                prefix = _prefix(spec, model, "document" if part.startswith("documents") else "query")
                per_text = min(chars / max(n, 1) / CHARS_PER_TOKEN + 2, model.max_length)  # + BOS/EOS, truncated
                label = (f"{name} " if len(names) > 1 else "") + part + (f" ({split})" if len(splits) > 1 else "")
                sets.append(TextSet(spec.name, label, prefix, n, int(n * (per_text + _prefix_tokens(prefix))), chars,
                                    int(st.get("min_text_length") or 0), int(st.get("max_text_length") or 0)))
    return TaskPlan(spec.name, "mteb stats", sum(s.texts for s in sets), sum(s.tokens for s in sets), sets)


def plan_from_folder(spec: TaskSpec, model: ModelConfig, folder: Path) -> TaskPlan:
    """Exact counts from a local folder: the texts mteb hands the encoder, rendered and tokenized by the
    encoder's own functions (the model's tokenizer; characters estimate it where that is not here)."""
    from mteb.types import PromptType

    from evalkit.beir_folder import attach_to_task, read_beir_folder
    from evalkit.encoding.encoder import loader_texts
    from evalkit.encoding.model import load_tokenizer, token_ids
    from evalkit.search import retrieval_loader
    from evalkit.tasks import get_mteb_task

    task = get_mteb_task(spec)
    attach_to_task(task, read_beir_folder(folder, spec.split), spec.split, spec.hf_subset)
    data = task.dataset[spec.hf_subset][spec.split]
    try:
        tokenizer, source = load_tokenizer(model, local_only=True), "local"
    except EvalkitError:  # the model's tokenizer is not on this machine (plan never downloads): estimate
        tokenizer, source = None, "local~"
    sets = []
    for part, side, prompt_type in (("documents", "document", PromptType.document),
                                    ("queries", "query", PromptType.query)):
        raw = loader_texts(retrieval_loader(data["corpus" if part == "documents" else part], task.metadata,
                                            prompt_type))
        texts = render(raw, model, spec, spec.type, side)
        if tokenizer is not None:
            tokens = [len(ids) for ids in token_ids(tokenizer, texts, model)]
        else:
            tokens = [int(min(len(t) / CHARS_PER_TOKEN + 2, model.max_length)) for t in texts]
        sets.append((from_texts(spec.name, part, raw, texts, tokens, _prefix(spec, model, side)), len(texts),
                     sum(tokens)))
    return TaskPlan(spec.name, source, sum(n for _, n, _ in sets), sum(t for _, _, t in sets), [s for s, _, _ in sets])


def make_plan(suite: str, model: str, data_root: str | None) -> list[TaskPlan]:
    """The suite's tasks in the order a run takes them (`suite_run_order`), each with what it leaves to encode."""
    cfg = load_model_config(model)
    specs = {name: _instructed_spec(name, cfg) for name in suite_task_names(suite)}
    estimated = {name: _stats_or_none(spec, cfg) for name, spec in specs.items()}
    plans = []
    for name in run_order({name: p.sets if p else [] for name, p in estimated.items()}):
        spec = specs[name]
        folder = _local_folder(spec, data_root) if spec.type == "Retrieval" else None  # exact counts: BEIR folders
        # a task mteb has no statistics for, and no local folder: plan_from_stats says so in one line
        plans.append(plan_from_folder(spec, cfg, folder) if folder else estimated[name] or plan_from_stats(spec, cfg))
    new = count_new({p.task: p.sets for p in plans})
    for p in plans:
        p.new = new[p.task]
    return plans


def suite_run_order(names: list[str]) -> list[str]:
    """Task names with those that share texts (by mteb's statistics) one after the other, so a suite run
    encodes a shared corpus once and the next task reads it from the embedding cache at once. The order reads
    only the statistics of the texts, not the instruction around them (minilm: a model without one). A task
    mteb publishes no statistics for keeps its place."""
    model = load_model_config("minilm")
    estimated = {name: _stats_or_none(get_task_spec(name), model) for name in names}
    return run_order({name: p.sets if p else [] for name, p in estimated.items()})


def _stats_or_none(spec: TaskSpec, model: ModelConfig) -> TaskPlan | None:
    try:
        return plan_from_stats(spec, model)
    except EvalkitError:
        return None


def _instructed_spec(name: str, model: ModelConfig) -> TaskSpec:
    """The task's spec with the instruction a run would give it (for a model that takes instructions)."""
    spec = get_task_spec(name)
    return resolve_instruction(spec)[0] if model.prompt is not None else spec


def _local_folder(spec: TaskSpec, data_root: str | None) -> Path | None:
    """The task's folder under data_root, or None: a task without one is counted from mteb's statistics."""
    if data_root is None:
        return None
    try:
        return local_data_dir(spec, None, data_root)
    except EvalkitError:
        return None


PLAN_KEYS = ("suite", "task", "model", "tokens_per_s", "data_root", "results_dir", "device")
PLAN_HELP = f"""usage: evalkit plan [suite=<name> | task=<a>[,<b>...]] [model=<name>] [tokens_per_s=<rate>] [data_root=<folder>]
                    [results_dir=<folder>] [device=<name>]

Size a job before running it: per task, the texts and tokens it asks for, the tokens left to encode once
each distinct text is encoded once across the suite, and the hours at the rate on one device (CPU-hours
when the rate was measured on a CPU).

  suite=<name> | task=<names>   a sweep suite (`evalkit list`), or tasks (default mteb_eng)
  model=<name>                  default e5_mistral_7b
  tokens_per_s=<rate>           the rate; else measured from the run records under results_dir= of this model
                                on this device (or device=<name>; runs mostly spent calibrating left out),
                                else {DEFAULT_TOKENS_PER_S:,} (a GPU's)
  data_root=<folder>            BEIR folders counted exactly with the model's tokenizer (else mteb's statistics)
"""


def main(argv: list[str]) -> None:
    """Arguments as key=value: suite (or task), model, tokens_per_s, data_root, results_dir, device."""
    if {"-h", "--help"} & set(argv):
        print(PLAN_HELP)
        return
    from evalkit.config import parse_overrides

    args = parse_overrides(argv, PLAN_KEYS)
    if "suite" in args and "task" in args:
        raise EvalkitError("plan takes suite= or task=, not both")
    suite = args.get("suite") or args.get("task") or "mteb_eng"
    model = args.get("model", "e5_mistral_7b")
    if "tokens_per_s" in args:
        try:
            tokens_per_s, rate_note, device = float(args["tokens_per_s"]), "as given", "device"
        except ValueError as exc:
            raise EvalkitError(f"tokens_per_s must be a number, got {args['tokens_per_s']!r}") from exc
        if not tokens_per_s > 0:
            raise EvalkitError(f"tokens_per_s must be > 0, got {args['tokens_per_s']!r}")
    else:
        tokens_per_s, rate_note, device = measured_rate(args.get("results_dir", "results"), load_model_config(model),
                                                        args.get("device"))
    plans = make_plan(suite, model, args.get("data_root"))
    print(f"{'task':<40} {'source':<10} {'texts':>12} {'tokens':>15} {'to encode':>15} {device + '-hours':>12}")
    for p in plans:
        print(f"{p.task:<40} {p.source:<10} {p.texts:>12,} {p.tokens:>15,} {p.to_encode:>15,} "
              f"{p.hours(tokens_per_s):>12.2f}")
    total, left = sum(p.tokens for p in plans), sum(p.to_encode for p in plans)
    print(f"{'total':<40} {'':<10} {sum(p.texts for p in plans):>12,} {total:>15,} {left:>15,} "
          f"{left / tokens_per_s / 3600:>12.2f}")
    notes = [f"  {p.task} {note}" for p in plans for note in p.new.notes]
    if notes:
        print(f"each distinct text is encoded once (the embedding cache, encode.cache=true): "
              f"{total - left:,} tokens ({(total - left) / max(total, 1):.1%}) fewer than the tasks ask for:")
        print("\n".join(notes))
    print(f"at {tokens_per_s:,.0f} tokens/s per {device} ({rate_note}); divide by the number of {device}s for "
          f"wall time")
    print(LEGEND)


def measured_rate(results_dir: str, model: ModelConfig, device: str | None) -> tuple[float, str, str]:
    """(tokens/s, where it came from, what it was measured on: CPU or GPU): the forward-pass rate of the run
    records under `results_dir` of this model and dtype on `device` (a part of its name; default this machine's
    GPU, else its CPU), all tokens over all forward seconds; the default when none matches. A run that spent longer calibrating its CPU batch size
    than encoding (`mostly_calibration`) measured too little to go by."""
    from evalkit.results import read_record, record_path, result_files

    wanted = device or this_device()
    tokens = seconds = 0.0
    used, calibrating, cpus = [], 0, 0
    for result in result_files(Path(results_dir)):
        record = read_record(result)
        if record is None:  # a finished task without a readable record: nothing to learn from it
            continue
        enc, cfg = record.get("encode") or {}, record.get("model") or {}
        name = str(enc.get("device") or (record.get("hardware") or {}).get("gpu") or "")
        if (cfg.get("name") == model.name and cfg.get("dtype") == model.dtype and wanted.lower() in name.lower()
                and enc.get("tokens") and enc.get("forward_seconds")):
            if mostly_calibration(enc):
                calibrating += 1
                continue
            tokens += enc["tokens"]
            cpus += name.startswith("CPU ")  # model.cpu_model's name: `this_device`
            seconds += enc["forward_seconds"]
            used.append(record_path(result).name.removesuffix(".run.json"))
    what = f"{model.name}, {model.dtype}, {wanted}"
    left_out = (f" ({calibrating} left out: they spent longer calibrating the CPU batch size than encoding)"
                if calibrating else "")
    if not used:
        return DEFAULT_TOKENS_PER_S, (f"the default, a GPU's: no run record of {what} under {results_dir}/{left_out}; "
                                      f"pass tokens_per_s="), "GPU"
    shown = ", ".join(used[:6]) + (f" and {len(used) - 6} more" if len(used) > 6 else "")
    kind = "CPU" if cpus == len(used) else "GPU" if not cpus else "device"
    note = f"measured: {len(used)} run records of {what} under {results_dir}/: {shown}{left_out}"
    return tokens / seconds, note, kind


def mostly_calibration(encode: dict) -> bool:
    """Whether a run record's encoding spent longer calibrating the CPU batch size than in its own forward
    passes (records before `calibration_seconds` existed say it in `budget_reason`)."""
    seconds = encode.get("calibration_seconds")
    if seconds is None:
        found = re.match(r"calibrated now in ([0-9.]+) s", str(encode.get("budget_reason") or ""))
        seconds = float(found.group(1)) if found else 0.0
    return seconds > encode["forward_seconds"]


def this_device() -> str:
    """The name run records give this machine's device: its GPU's, else its CPU's."""
    import torch

    from evalkit.encoding.model import cpu_model

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU {cpu_model()}"
