"""Checks before the model loads: the task spec against mteb's metadata, the model config's template and
device, and the loaded data against what the task's evaluator scores. Each failure is one line.
"""

from __future__ import annotations

import math
from pathlib import Path

from evalkit import EvalkitError
from evalkit.config import ModelConfig, TaskSpec, suggest
from evalkit.errors import first_line
from evalkit.mteb_hooks import typed_metrics
from evalkit.encoding.prompt import check_template

RETRIEVAL_AT_K = ("ndcg", "map", "recall", "precision", "mrr", "hit_rate")  # <name>_at_<k>, each k of the task
RETRIEVAL_NAUC = ("ndcg", "map", "recall", "precision", "mrr")  # nauc_<name>_at_<k>_{max,std,diff1}
PAIR_SCORES = ("similarity", "cosine", "dot", "euclidean", "manhattan", "max")  # <score>_<metric>
PAIR_METRICS = ("accuracy", "f1", "precision", "recall", "ap")


def metric_keys(task) -> set[str] | None:
    """The score keys mteb writes for this task (its family's evaluator, and for retrieval its k values);
    None for a family evalkit does not know, or a task whose main score is none of its family's (its own
    scores): then the scores mteb writes decide, after the run."""
    import typing

    from mteb import abstasks as a

    keys: set[str] | None = None
    if isinstance(task, a.AbsTaskRetrieval):
        ks = task.k_values
        keys = {f"{name}_at_{k}" for name in RETRIEVAL_AT_K for k in ks} | {"accuracy"}
        keys |= {f"nauc_{name}_at_{k}_{part}" for name in RETRIEVAL_NAUC for k in ks for part in ("max", "std", "diff1")}
    elif isinstance(task, a.AbsTaskPairClassification):
        keys = {f"{score}_{metric}" for score in PAIR_SCORES for metric in PAIR_METRICS}
    elif isinstance(task, a.AbsTaskClusteringLegacy):
        keys = {"v_measure", "v_measure_std"}
    elif isinstance(task, a.AbsTaskClustering):
        keys = {"v_measure", "v_measure_std", "ami", "ami_std"}
    else:
        try:  # the score types mteb declares; a release that moves them only defers the check to the run
            typed = typed_metrics(task)
        except (ImportError, AttributeError):
            typed = None
        keys = None if typed is None else set(typing.get_type_hints(typed))
    if keys is None or task.metadata.main_score not in keys:  # a task with scores of its own (MindSmallReranking)
        return None
    return keys | {"main_score"}



def check_spec(spec: TaskSpec, task=None) -> None:
    """The spec against mteb's task (`task`, looked up by name when not given): the type is mteb's (an override
    of it would change only the stored identity), the subsets exist, and the task writes the headline metric."""
    import mteb

    if task is None:
        try:
            task = mteb.get_task(spec.mteb_task)
        except (KeyError, ValueError) as exc:
            raise EvalkitError(f"mteb has no task {spec.mteb_task!r}: {exc}") from exc
    meta = task.metadata
    if spec.type is not None and str(spec.type) != meta.type:
        raise EvalkitError(f"task.type={spec.type}: {meta.name} is a {meta.type} task in mteb, and mteb evaluates it "
                           f"as one whatever the type says; remove the override (a task's type is mteb's)")
    known = list(meta.hf_subsets)
    for subset in [spec.hf_subset, *(spec.hf_subsets or [])]:
        if subset not in known:
            raise EvalkitError(f"task.hf_subset: {meta.name} has no subset {subset!r}{suggest(subset, known)}")
    keys = metric_keys(task)
    if spec.metric is not None and keys is not None and spec.metric not in keys:
        raise EvalkitError(f"task.metric={spec.metric}: {meta.name} ({meta.type}) writes no such score"
                           f"{suggest(spec.metric, sorted(keys))}")


def check_written(spec: TaskSpec, entry: dict) -> None:
    """After the run, before anything is written: mteb wrote the headline metric (for a task whose scores
    `metric_keys` cannot tell beforehand)."""
    if spec.metric not in entry:
        written = sorted(k for k, v in entry.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise EvalkitError(f"task.metric={spec.metric}: {spec.mteb_task} wrote no such score"
                           f"{suggest(spec.metric, written)}")


def headline_subset(spec: TaskSpec, evaluated: list[str], folder: Path | None) -> None:
    """The headline subset is one of those evaluated (a local folder evaluates the subsets it holds)."""
    if spec.hf_subset not in evaluated:
        where = f"data_dir {folder} holds" if folder is not None else "the run evaluates"
        raise EvalkitError(f"task.hf_subset={spec.hf_subset}: {where} no subset {spec.hf_subset} of {spec.mteb_task} "
                           f"(only {', '.join(evaluated)}); pass task.hf_subset=<one of them> to score it")


def check_device(device: str, where: str = "model.device") -> None:
    """A device this torch build has (`cuda` on a CPU-only build is one line, not an AssertionError)."""
    import torch

    if device == "auto":
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise EvalkitError(f"{where}={device}: not a device ({first_line(exc)}); use auto, cpu or cuda") from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build that sees no GPU"
            raise EvalkitError(f"{where}={device}: no CUDA device (torch {torch.__version__} is {build}); use "
                               f"model.device=auto or cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise EvalkitError(f"{where}={device}: only {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise EvalkitError(f"{where}={device}: MPS is not available on this machine")


def check_model(model: ModelConfig) -> None:
    if model.prompt is not None:
        check_template(model.prompt.template)
    check_device(model.device)


def check_data(task) -> None:
    """The loaded data as the task's evaluator reads it: STS scores are numbers, pair-classification labels
    0 or 1, classification labels of one kind in the training and evaluated splits."""
    from mteb import abstasks as a

    name = task.metadata.name
    subsets = task.hf_subsets if task.metadata.is_multilingual else [None]
    for subset in subsets:
        config = task.dataset[subset] if subset is not None else task.dataset
        splits = [s for s in task.eval_splits if s in config]
        label_kinds: dict[str, set[str]] = {}
        for split in splits + ([task.train_split] if _trains(task) and task.train_split in config else []):
            where = f"{name} {subset + '/' if subset else ''}{split}"
            data = config[split]
            if isinstance(task, a.AbsTaskSTS):
                _check_values(data, "score", where, _is_number, "a number")
            elif isinstance(task, a.AbsTaskPairClassification):
                _check_values(data, task.label_column_name, where, _is_binary, "0 or 1")
            elif _trains(task) and task.label_column_name in data.column_names:
                label_kinds[split] = {_kind(v) for v in _flat(data[task.label_column_name])}
        if len({frozenset(k) for k in label_kinds.values()}) > 1:
            shown = "; ".join(f"{split}: {', '.join(sorted(k))}" for split, k in label_kinds.items())
            raise EvalkitError(f"{name}{' ' + subset if subset else ''}: the labels are of different kinds in its "
                               f"splits ({shown}), so no test label would match a training label")


def _trains(task) -> bool:
    """A classification task trained on its train split (not cross-validated)."""
    from mteb import abstasks as a

    return isinstance(task, a.AbsTaskClassification) and not getattr(task, "is_cross_validation", False)


def _is_binary(value) -> bool:
    """A pair label mteb scores: 0 or 1, or a bool (True and False are 1 and 0 to its average precision)."""
    return isinstance(value, bool) or (_is_number(value) and value in (0, 1))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value) -> str:
    return "numbers" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


def _flat(values):
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from value
        else:
            yield value


def _check_values(data, column: str, where: str, ok, wanted: str) -> None:
    if column not in data.column_names:
        return  # a missing column is mteb_folder.check_columns' line
    for row, value in enumerate(data[column]):
        values = value if isinstance(value, (list, tuple)) else [value]
        bad = next((v for v in values if not ok(v)), _OK)
        if bad is not _OK:
            raise EvalkitError(f"{where}: row {row}: {column!r} must be {wanted}, got {bad!r:.40}")


_OK = object()
