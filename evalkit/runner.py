"""One task, one model: data -> encoder -> mteb evaluation -> result file and run record."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit import EvalkitError, itemscores
from evalkit.config import RunConfig, TaskSpec, hub_offline
from evalkit.data import attach_to_task, local_data_dir, read_beir_folder
from evalkit.distributed import barrier, init_from_env, rank, world_size
from evalkit.encoding.encoder import Encoder
from evalkit.instructions import resolve_instruction
from evalkit import results
from evalkit.results import environment, scores_entry, write_result
from evalkit.search import ExactSearch
from evalkit.task_data import load_mteb_folder
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


def result_path(cfg: RunConfig) -> Path:
    return results.result_path(cfg.results_dir, cfg.model.name, cfg.model.revision, cfg.task.mteb_task)


def load_task(cfg: RunConfig, folder: Path | None):
    """The mteb task with its data loaded: from a local folder when given (BEIR for retrieval, else an mteb
    dataset folder), else from the hub."""
    from mteb.abstasks import AbsTaskRetrieval

    spec = cfg.task
    task = get_mteb_task(spec, all_subsets=folder is not None)
    if folder is not None and not isinstance(task, AbsTaskRetrieval):
        load_mteb_folder(task, folder, spec.hf_subsets)
        return task
    if folder is not None:
        if spec.type in ("Reranking", "InstructionReranking"):
            raise EvalkitError(f"data_dir: {spec.mteb_task} reranks each query's candidate list (mteb's top_ranked), "
                               f"which a BEIR folder does not hold; a BEIR folder would score full retrieval instead")
        task = get_mteb_task(spec)
        attach_to_task(task, read_beir_folder(folder, spec.split), spec.split, spec.hf_subset)
        return task
    try:
        task.load_data()
    except Exception as exc:  # datasets raises many kinds; the user needs one line
        if hub_offline():
            raise EvalkitError(
                f"the data of {spec.mteb_task} is not in the local cache and HF_HUB_OFFLINE=1 forbids downloading it "
                f"(pass data_dir=<BEIR folder> for retrieval tasks)"
            ) from None
        raise EvalkitError(f"cannot load the data of {spec.mteb_task}: {str(exc).splitlines()[0]}") from None
    return task


def capture_per_query(task) -> dict[str, dict[str, float]]:
    """Per-query retrieval scores (nDCG@10 and friends), caught from mteb's own evaluation hook."""
    captured: dict[str, dict[str, float]] = {}
    original = getattr(task, "task_specific_scores", None)
    if original is None or subtask_names(task) != [task.metadata.name]:
        return captured  # aggregates (CQADupstack) score in their parts

    def hook(scores, qrels, results, hf_split, hf_subset):
        for qid, per_metric in scores.items():
            for trec_key, name in PER_QUERY_METRICS.items():
                if trec_key in per_metric:
                    captured.setdefault(name, {})[qid] = per_metric[trec_key]
        return original(scores, qrels, results, hf_split, hf_subset)

    task.task_specific_scores = hook
    return captured


def run(cfg: RunConfig) -> RunSummary:
    """Evaluate and write; returns a summary. A finished task is skipped unless cfg.overwrite."""
    import mteb

    init_from_env()  # under torchrun: join the ranks; they share the encoding, rank 0 writes
    spec = cfg.task
    out = result_path(cfg)
    summary = RunSummary(spec.name, spec.mteb_task, spec.metric, out, main_rank=rank() == 0, skipped=True)
    if out.exists() and not cfg.overwrite:
        return summary
    source = None
    if cfg.model.prompt is not None:  # a model without instructions needs none
        spec, source = resolve_instruction(spec, cfg.strict_instructions)
    folder = local_data_dir(spec, cfg.data_dir, cfg.data_root)
    task = load_task(cfg, folder)
    subsets = list(task.hf_subsets) if task.metadata.is_multilingual else [spec.hf_subset]
    headline = spec.hf_subset if spec.hf_subset in subsets else subsets[0]
    if headline != spec.hf_subset:
        log.warning("%s: subset %s is not evaluated; the headline score is %s's (the run record says so)",
                    spec.mteb_task, spec.hf_subset, headline)
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
    entry = scores_entry(task_result.scores, spec.split, headline)
    if entry is None:
        raise EvalkitError(f"mteb wrote no {spec.split}/{headline} scores for {spec.mteb_task}")
    score = float(entry[spec.metric])
    items = itemscores.verified(per_item.get(headline), score, spec.mteb_task)
    record = run_record(cfg, replace(spec, hf_subset=headline, hf_subsets=subsets), source, encoder, wall, score,
                        folder, per_query, items)
    if rank() == 0:
        write_result(out, task_result, record, encoder.mteb_model_meta)
    barrier()  # no rank reports done before the file exists
    shown = {k: entry[k] for k in SUMMARY_METRICS if k in entry and k != spec.metric}
    summary.skipped, summary.score, summary.scores, summary.wall_time_s = False, score, shown, wall
    return summary


def run_record(cfg: RunConfig, spec: TaskSpec, source: str | None, encoder: Encoder, wall: float, score: float,
               folder: Path | None, per_query: dict, per_item: dict | None) -> dict[str, Any]:
    """What a reader needs to trust a result; `spec` as run (instruction resolved, subsets evaluated)."""
    return {
        "task": spec.name,
        "mteb_task": spec.mteb_task,
        "type": spec.type,
        "split": spec.split,
        "hf_subset": spec.hf_subset,  # the headline score's
        "hf_subsets": spec.hf_subsets,  # every subset evaluated
        "metric": spec.metric,
        "score": score,
        "instruction": spec.instruction if cfg.model.prompt else None,
        "instruction_source": source,  # task.instruction, conf/tasks/<Task>.yaml, or mteb's prompts
        "normalized": encoder.normalizes(spec.type),  # embeddings L2-normalized (e5: not for classification)
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
