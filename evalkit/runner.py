"""One task, one model: data -> encoder -> mteb evaluation -> result file and run record."""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit import EvalkitError, itemscores, validate
from evalkit.config import RunConfig, TaskSpec, hub_offline
from evalkit.beir_folder import BeirData, attach_to_task, beir_data_fingerprint, local_data_dir, read_beir_folder
from evalkit.distributed import barrier, init_from_env, rank, world_size
from evalkit.encoding.encoder import Encoder
from evalkit.encoding.sources import folder_record
from evalkit.errors import first_line
from evalkit.files import check_writable
from evalkit.hub import check_reachable, offline_error
from evalkit.identity import Data, Experiment, experiment, first_difference, hub_data, local_data
from evalkit.instructions import resolve_instruction
from evalkit.mteb_hooks import watch_query_scores
from evalkit.results import (check_names, environment, pair_problem, read_record, result_lock, result_path,
                             scores_entry, write_result)
from evalkit.search import ExactSearch
from evalkit.mteb_folder import load_mteb_folder, task_data_fingerprint
from evalkit.tasks import get_mteb_task, subtask_names

log = logging.getLogger(__name__)

SUMMARY_METRICS = ("ndcg_at_10", "map_at_10", "recall_at_100", "mrr_at_10")
PER_QUERY_METRICS = {"ndcg_cut_10": "ndcg_at_10", "map_cut_10": "map_at_10", "recall_100": "recall_at_100"}
LOADER_BATCH = 4096  # texts per mteb data-loader batch: the encoder joins them and cuts its own batches


@dataclass
class RunSummary:
    """What a run did, for the command line: where the result is and its headline scores."""

    task: str  # CLI name
    mteb_task: str
    metric: str  # main metric
    path: Path  # the TaskResult file
    main_rank: bool  # rank 0 (or the only process): the one that prints
    skipped: bool  # already finished, not run again
    score: float | None = None  # main metric, when run
    scores: dict[str, float] = field(default_factory=dict)  # other headline metrics
    wall_time_s: float = 0.0
    texts: int = 0  # texts the task asked embeddings of, cache hits and repeated texts included
    cache_hits: int = 0  # of those, read from the embedding cache as earlier runs left it
    repeated: int = 0  # of those, texts met earlier in this run: encoded once


@dataclass
class PreparedRun:
    """What a run will do, decided before any model loads: its data, its identity and where it writes."""

    task: Any  # the mteb task (hub data not loaded yet; a local mteb dataset folder's loaded)
    spec: TaskSpec  # as run: the instruction resolved, the subsets evaluated and the headline one
    instruction_source: str | None  # where the instruction came from (None: the model takes none)
    folder: Path | None  # the local data folder, if any
    data: BeirData | None  # a local BEIR folder's contents, read and checked
    experiment: Experiment
    path: Path  # the TaskResult file


def prepare_run(cfg: RunConfig) -> PreparedRun:
    """Resolve the instruction, read and check the local data, fingerprint the weights and the data: the
    run's identity and file."""
    spec, source = cfg.task, None
    check_names(cfg.model.name, cfg.model.revision)
    if cfg.model.prompt is not None:  # a model without instructions needs none
        spec, source = resolve_instruction(spec, cfg.strict_instructions)
    validate.check_model(cfg.model)
    validate.check_spec(spec)
    folder = local_data_dir(spec, cfg.data_dir, cfg.data_root)
    task, data, origin = task_and_data(spec, folder)
    subsets = list(task.hf_subsets) if task.metadata.is_multilingual else [spec.hf_subset]
    validate.headline_subset(spec, subsets, folder)
    spec = replace(spec, hf_subsets=subsets)
    exp = experiment(replace(cfg, task=spec), origin)
    return PreparedRun(task, spec, source, folder, data, exp,
                   result_path(cfg.results_dir, cfg.model.name, exp.folder, spec.mteb_task))


def task_and_data(spec: TaskSpec, folder: Path | None) -> tuple[Any, BeirData | None, Data]:
    """The mteb task, a BEIR folder's data, and the data's identity: a local BEIR folder for retrieval, a
    local mteb dataset folder (loaded now, by mteb's own load_data) for every other type, else the hub."""
    from mteb.abstasks import AbsTaskRetrieval

    if folder is None:
        task = get_mteb_task(spec)
        return task, None, hub_data(task)
    task = get_mteb_task(spec, all_subsets=True)
    if not isinstance(task, AbsTaskRetrieval):
        load_mteb_folder(task, folder, spec.hf_subsets)
        validate.check_data(task)
        return task, None, local_data(folder.resolve().name, task_data_fingerprint(task))
    if spec.type in ("Reranking", "InstructionReranking"):
        raise EvalkitError(f"data_dir: {spec.mteb_task} reranks each query's candidate list (mteb's top_ranked), "
                           f"which a BEIR folder does not hold; a BEIR folder would score full retrieval instead")
    data = read_beir_folder(folder, spec.split)
    return get_mteb_task(spec), data, local_data(folder.resolve().name, beir_data_fingerprint(data))


def finished(prepared: PreparedRun, overwrite: bool) -> bool:
    """Whether the result file already holds this very experiment (then a re-run is skipped unless overwrite).
    A file of another experiment, or one whose identity is unknown, is never replaced: one line says why."""
    out = prepared.path
    if not out.exists():
        return False
    record = read_record(out) or {}
    stored = record.get("identity")
    if stored is None:
        raise EvalkitError(f"{out} has no experiment identity (its run record is missing, unreadable, or from an "
                           f"older evalkit), so evalkit cannot tell whether it is this experiment and will not replace "
                           f"it: move or delete {out.parent} to recompute, or pass another results_dir")
    moved = data_source_change(record, prepared.experiment.identity)
    if moved:
        raise EvalkitError(f"{out} {moved}; it is never replaced, overwrite=true included (or move or delete "
                           f"{out.parent}, or pass another results_dir)")
    if stored != prepared.experiment.identity:
        raise EvalkitError(f"{out} holds another experiment ({first_difference(stored, prepared.experiment.identity)}) "
                           f"and is never replaced, overwrite=true included: move or delete {out.parent}, "
                           f"or pass another results_dir")
    problem = pair_problem(out, record)
    if problem and not overwrite:
        raise EvalkitError(f"{out} is not one run's result: {problem} (two runs wrote it at once, or it was edited); "
                           f"pass overwrite=true to compute it again, or move or delete it")
    return not overwrite


def data_source_change(record: dict, current: dict) -> str | None:
    """When a stored result was computed from a local data folder and this run has none (or the other way round):
    what each reads, and how to give a folder; None for any other difference."""
    was, now = (record.get("identity") or {}).get("data") or {}, current.get("data") or {}
    if {was.get("source"), now.get("source")} != {"local", "hub"}:
        return None
    hub = ", ".join(now.get("datasets") or was.get("datasets") or ["?"])
    if now.get("source") == "hub":
        return (f"was computed from the local data folder {record.get('data_dir') or '(unknown)'}, and this run was "
                f"given no data folder, so its data would come from the hub ({hub}, the revision mteb pins): pass "
                f"data_dir={record.get('data_dir') or '<folder>'} (or data_root=<folder of folders>) to use the local "
                f"data")
    return (f"was computed from the hub's data ({hub}, the revision mteb pins), and this run reads a local data "
            f"folder: leave out data_dir=/data_root= to use the hub's data")


def load_task(prepared: PreparedRun):
    """The mteb task with its data loaded: the local folder's when given, else the hub's."""
    spec, task = prepared.spec, prepared.task
    if prepared.data is not None:
        attach_to_task(task, prepared.data, spec.split, spec.hf_subset)
        return task
    if task.data_loaded:  # a local mteb dataset folder, loaded when the run was prepared
        return task
    what = f"the data of {spec.mteb_task}"
    fix = ("pass data_dir=<folder> or data_root=<folder of folders> (BEIR folders for retrieval, the task's "
           "dataset for other types)")
    check_reachable(what, fix)
    try:
        task.load_data()
    except Exception as exc:  # datasets raises many kinds; the user needs one line
        if hub_offline():
            raise offline_error(what, fix) from exc
        raise EvalkitError(f"cannot load the data of {spec.mteb_task}: {first_line(exc)}") from exc
    validate.check_data(task)
    return task


def capture_per_query(task) -> dict[str, dict[str, float]]:
    """Per-query retrieval scores (nDCG@10 and friends), caught from mteb's own evaluation (evalkit.mteb_hooks)."""
    captured: dict[str, dict[str, float]] = {}
    if not hasattr(task, "task_specific_scores") or subtask_names(task) != [task.metadata.name]:
        return captured  # not retrieval; aggregates (CQADupstack) score in their parts

    def keep(scores: dict[str, dict[str, float]]) -> None:
        for qid, per_metric in scores.items():
            for trec_key, name in PER_QUERY_METRICS.items():
                if trec_key in per_metric:
                    captured.setdefault(name, {})[qid] = per_metric[trec_key]

    watch_query_scores(task, keep)
    return captured


@contextmanager
def quiet_libraries():
    """For the length of a run: the libraries' own progress bars off (transformers' "Loading weights",
    datasets' "Standardizing text corpus format"; downloads keep theirs, the encoder has its own), and mteb's
    superseded-task notice said once (mteb both logs and warns it); everything as it was afterwards."""
    import datasets
    import huggingface_hub.utils as hub
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled(), hub.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # this turns the hub's download bars off too: they are put back
    datasets.disable_progress_bars()
    if not bars[2]:
        hub.enable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"The task '.*' is superseded by")  # its log line stays
            yield
    finally:
        if bars[0]:
            hf_logging.enable_progress_bar()
        if bars[1]:
            datasets.enable_progress_bars()
        (hub.disable_progress_bars if bars[2] else hub.enable_progress_bars)()


@quiet_libraries()  # the whole run: no library progress bars, mteb's superseded notice once
def run(cfg: RunConfig) -> RunSummary:
    """Evaluate and write; returns a summary. A task whose result holds this experiment's identity is skipped
    unless cfg.overwrite; everything that can fail on the user's input fails before the model loads. The result
    path is locked from the check to the last write: a second run to it waits, then skips or is refused."""
    init_from_env()  # under torchrun: join the ranks; they share the encoding, rank 0 writes
    prepared = prepare_run(cfg)
    with result_lock(prepared.path, take=rank() == 0):  # from "done already?" to the last write: no other run between
        barrier()  # the other ranks look once rank 0 holds the lock
        return _run_locked(cfg, prepared)


def _run_locked(cfg: RunConfig, prepared: PreparedRun) -> RunSummary:
    import mteb

    spec, out = prepared.spec, prepared.path
    summary = RunSummary(spec.name, spec.mteb_task, spec.metric, out, main_rank=rank() == 0, skipped=True)
    if finished(prepared, cfg.overwrite):
        return summary
    check_writable(cfg.results_dir, "results_dir")
    task = load_task(prepared)
    encoder = Encoder(cfg.model, {name: spec for name in subtask_names(task)}, cfg.encode)
    per_query = capture_per_query(task)
    per_item = itemscores.capture(task, spec.metric)
    start = time.perf_counter()
    model_result = mteb.evaluate(
        ExactSearch(encoder), task, cache=None, overwrite_strategy="always", raise_error=True,
        encode_kwargs={"batch_size": LOADER_BATCH}, show_progress_bar=False,
    )
    wall = time.perf_counter() - start
    task_result = model_result.task_results[0]
    entry = scores_entry(task_result.scores, spec.split, spec.hf_subset)
    if entry is None:
        raise EvalkitError(f"mteb wrote no {spec.split}/{spec.hf_subset} scores for {spec.mteb_task}")
    validate.check_written(spec, entry)
    score = float(entry[spec.metric])
    items = itemscores.verified(per_item.get(spec.hf_subset), score, spec.mteb_task)
    record = run_record(cfg, encoder, wall, score, prepared, per_query, items)
    if rank() == 0:  # mteb reads model_meta's revision as the folder's: an experiment folder is its own revision
        meta = encoder.mteb_model_meta.model_copy(update={"revision": prepared.experiment.folder})
        try:
            write_result(out, task_result, record, meta)
        except OSError as exc:  # a disk that filled during the run: the result file is not there, nothing half
            raise EvalkitError(f"cannot write the result {out}: {exc.strerror or exc}; nothing was written in its "
                               f"place (free space and run again)") from exc
    barrier()  # no rank reports done before the file exists
    shown = {k: entry[k] for k in SUMMARY_METRICS if k in entry and k != spec.metric}
    summary.skipped, summary.score, summary.scores, summary.wall_time_s = False, score, shown, wall
    summary.texts, summary.cache_hits, summary.repeated = (encoder.stats.texts, encoder.stats.cache_hits,
                                                           encoder.stats.repeated)
    return summary


def run_record(cfg: RunConfig, encoder: Encoder, wall: float, score: float, prepared: PreparedRun, per_query: dict,
               per_item: dict | None) -> dict[str, Any]:
    """What a reader needs to trust a result; the spec as run (instruction resolved, subsets evaluated)."""
    spec, folder, exp = prepared.spec, prepared.folder, prepared.experiment
    return {
        "identity": exp.identity,
        "experiment": {"folder": exp.folder, "differs": exp.differs, "published_data": exp.published_data},
        "task": spec.name,
        "mteb_task": spec.mteb_task,
        "type": spec.type,
        "split": spec.split,
        "hf_subset": spec.hf_subset,  # the headline score's
        "hf_subsets": spec.hf_subsets,  # every subset evaluated
        "metric": spec.metric,
        "score": score,
        "instruction": spec.instruction if cfg.model.prompt else None,
        "instruction_source": prepared.instruction_source,  # task.instruction, conf/tasks/<Task>.yaml, or mteb's prompts
        "normalized": encoder.normalizes(spec.type),  # embeddings L2-normalized (e5: not for classification)
        "prompts": encoder.prompts_used,  # "<task>/<side>" -> the prompt each side got and where it came from
        "model_folder": folder_record(cfg.model),  # a folder model: what was read, from where, which path ran
        "model": asdict(cfg.model),
        "config": asdict(cfg),
        "data_dir": str(folder.resolve()) if folder else None,
        "special_tokens": encoder.special_tokens(),
        "encode": encoder.stats.as_record(),
        "wall_time_s": wall,
        "per_query": per_query,  # retrieval: per-query scores, for confidence intervals
        "per_item": per_item,  # STS, pair classification, summarization: see evalkit.itemscores
        "world_size": world_size(),
        **environment(),
    }
