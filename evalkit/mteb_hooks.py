"""The mteb boundary: every use of mteb's private internals, each checked against the installed mteb when used.

Everything else in evalkit uses mteb's public API only (`mteb.evaluate`, `mteb.get_task(s)`, task `metadata`
with `metadata.descriptive_stats`, `mteb.models.SearchEncoderWrapper`, `mteb.types`, a task's `dataset`,
`data_loaded`, `hf_subsets` and column-name attributes). What mteb offers no public way to do goes through
here, one function per need, and each names the private hook it relies on in `HOOKS`:

- per-item scores for confidence intervals: the arrays STS, pair classification and summarization score
  from (`_evaluate_subset`, `_calculate_scores`, `_compute_metrics`, the summarization evaluator's
  `_calculate_metrics`), and retrieval's per-query scores (`task_specific_scores`);
- a local mteb dataset folder loaded by mteb's own `load_data` (`abstask.load_dataset` answered from it);
- the texts exactly as mteb hands them to a model (`mteb._create_dataloaders.create_dataloader`);
- the bitext columns mteb reads (`_get_pairs`) and the default prompt of a task type (`get_abstask_prompt`).

Before a hook is used, `check` compares it with what evalkit expects (it exists; the parameters evalkit
passes or receives are there, in that order): a mismatch is one line naming the installed mteb version and
the hook, never a run that scores differently or silently drops a confidence interval.

Checked: mteb 2.26.24 (installed: every hook matches) and mteb 2.20.0, the floor (its wheel unpacked apart and
`check` run on every hook; not installed): every hook matches except `get_abstask_prompt`, which 2.20 lacks
(there, a task with no instruction from a task file, `task.instruction` or mteb's metadata stops with this
module's one line).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from evalkit import EvalkitError

CHECKED = "2.20.0-2.26.24"  # the mteb releases whose source these hooks were checked against


@dataclass(frozen=True)
class Hook:
    """A private mteb object evalkit relies on: `path` (module.attribute...), the parameters evalkit passes or
    receives positionally (first, in order, `self` not counted), and those it passes by keyword."""

    path: str
    positional: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    callable: bool = True


HOOKS = {h.path: h for h in (
    Hook("mteb.abstasks.AbsTask._evaluate_subset", ("model", "data_split"), ("hf_split", "hf_subset")),
    Hook("mteb.abstasks.AbsTaskSTS._calculate_scores", ("scores", "normalized_scores")),
    Hook("mteb.abstasks.AbsTaskPairClassification._compute_metrics", ("similarity_scores", "labels")),
    Hook("mteb.abstasks.AbsTaskSummarization.evaluator", callable=False),
    Hook("mteb._evaluators.text.summarization_evaluator.SummarizationEvaluator._calculate_metrics", ("distances",)),
    Hook("mteb._evaluators.text.summarization_evaluator.DeprecatedSummarizationEvaluator", callable=False),
    Hook("mteb.abstasks.AbsTaskRetrieval.task_specific_scores", ("scores", "qrels", "results", "hf_split",
                                                                 "hf_subset")),
    Hook("mteb.abstasks.abstask.load_dataset", (), ("path", "name", "split")),
    Hook("mteb.abstasks.AbsTask.load_data"),
    Hook("mteb._create_dataloaders.create_dataloader", ("dataset",),
         ("task_metadata", "prompt_type", "batch_size", "num_proc")),
    Hook("mteb.abstasks.AbsTaskBitextMining._get_pairs", ("parallel",)),
    Hook("mteb.abstasks.abstask.get_abstask_prompt", ("task_name",)),
)}


def mteb_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mteb")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def mismatch(path: str, what: str) -> EvalkitError:
    return EvalkitError(f"mteb {mteb_version()}: {path} {what}; evalkit relies on it (its hooks were checked with mteb "
                        f"{CHECKED}, see evalkit/mteb_hooks.py): pip install -U 'mteb<2.27', or report it")


def resolve(path: str) -> Any:
    """The object at `path`: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError as exc:
                raise mismatch(path, "does not exist") from exc
        return obj
    raise mismatch(path, "cannot be imported")


def check(path: str) -> Any:
    """The hook's object, after checking it against `HOOKS[path]`; one line naming mteb's version if it differs."""
    hook = HOOKS[path]
    obj = resolve(path)
    if not hook.callable:
        return obj
    try:
        params = [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]
    except (TypeError, ValueError) as exc:
        raise mismatch(path, "is no longer a function") from exc
    names = [p.name for p in params]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    if tuple(names[:len(hook.positional)]) != hook.positional:
        raise mismatch(path, f"takes ({', '.join(names)}), not ({', '.join(hook.positional)}, ...)")
    missing = [k for k in hook.keywords if k not in names and not takes_any]
    if missing:
        raise mismatch(path, f"takes no {', '.join(missing)}")
    return obj


def check_all() -> None:
    for path in HOOKS:
        check(path)


# -- per-item and per-query scores ------------------------------------------------------------------------

ItemScores = Callable[[str, str, Any, Any], None]  # (family, hf_subset, scores, gold)


def watch_item_scores(task, on_scores: ItemScores) -> bool:
    """Call `on_scores(family, hf_subset, scores, gold)` with the per-item arrays the task scores each subset
    from: family "sts" (mteb's score columns, the normalized gold scores), "pair" (the distance columns, the
    labels), "summary" (per-document distances, None). False (nothing watched) for the other task types."""
    from mteb import abstasks

    if not isinstance(task, (abstasks.AbsTaskSTS, abstasks.AbsTaskPairClassification, abstasks.AbsTaskSummarization)):
        return False
    check("mteb.abstasks.AbsTask._evaluate_subset")
    current: dict[str, str] = {}

    def tap(hook: str, family: str) -> None:
        check(hook)
        method = hook.rpartition(".")[2]
        original = getattr(task, method)  # the task's own (a task may override it)

        def tapped(scores, gold):
            on_scores(family, current["subset"], scores, gold)
            return original(scores, gold)

        setattr(task, method, tapped)

    if isinstance(task, abstasks.AbsTaskSTS):
        tap("mteb.abstasks.AbsTaskSTS._calculate_scores", "sts")
    elif isinstance(task, abstasks.AbsTaskPairClassification):
        tap("mteb.abstasks.AbsTaskPairClassification._compute_metrics", "pair")
    else:
        check("mteb.abstasks.AbsTaskSummarization.evaluator")
        check("mteb._evaluators.text.summarization_evaluator.SummarizationEvaluator._calculate_metrics")
        base = task.evaluator

        class Capturing(base):  # the task builds its evaluator from this class attribute
            def _calculate_metrics(self, distances):
                on_scores("summary", current["subset"], distances, None)
                return super()._calculate_metrics(distances)

        task.evaluator = Capturing
    evaluate_subset = task._evaluate_subset

    def tracking(*args, hf_subset: str, **kwargs):
        current["subset"] = hf_subset
        return evaluate_subset(*args, hf_subset=hf_subset, **kwargs)

    task._evaluate_subset = tracking
    return True


def deprecated_summarization(task) -> bool:
    """Whether a summarization task scores with mteb's deprecated evaluator (SummEval v1: mteb bug #1156)."""
    deprecated = check("mteb._evaluators.text.summarization_evaluator.DeprecatedSummarizationEvaluator")
    return issubclass(task.evaluator, deprecated)


def watch_query_scores(task, on_scores: Callable[[dict[str, dict[str, float]]], None]) -> None:
    """Call `on_scores({query id: {trec_eval measure: value}})` with a retrieval task's per-query scores."""
    check("mteb.abstasks.AbsTaskRetrieval.task_specific_scores")
    original = task.task_specific_scores

    def hook(scores, qrels, results, hf_split, hf_subset):
        on_scores(scores)
        return original(scores, qrels, results, hf_split, hf_subset)

    task.task_specific_scores = hook


# -- data ---------------------------------------------------------------------------------------------------

def load_data_from(task, load_dataset: Callable[..., Any]) -> None:
    """Run mteb's own `task.load_data()` with every `datasets.load_dataset` call it makes answered by
    `load_dataset(path=, name=, split=, ...)`; fails loudly when mteb loads without asking it."""
    from unittest import mock

    from mteb.abstasks import abstask

    check("mteb.abstasks.AbsTask.load_data")
    check("mteb.abstasks.abstask.load_dataset")
    calls = []

    def answered(*args, **kwargs):
        calls.append(1)
        return load_dataset(*args, **kwargs)

    with mock.patch.object(abstask, "load_dataset", answered):
        task.load_data()
    if not calls:
        raise mismatch("mteb.abstasks.abstask.load_dataset", f"was not called by {type(task).__name__}.load_data")


def loader(dataset, task_metadata, prompt_type, batch_size: int = 32, num_proc: int | None = None):
    """mteb's own data loader for a dataset: texts come out as mteb hands them to a model (title + text)."""
    create = check("mteb._create_dataloaders.create_dataloader")
    return create(dataset, task_metadata=task_metadata, prompt_type=prompt_type, batch_size=batch_size,
                  num_proc=num_proc)


def bitext_columns(task) -> list[str]:
    """The columns a (non-parallel) bitext-mining task reads."""
    check("mteb.abstasks.AbsTaskBitextMining._get_pairs")
    pairs = task._get_pairs(False)
    return sorted({column for pair in pairs for column in pair})


def default_prompt(task_name: str) -> str:
    """mteb's default prompt for the task's type (empty when none)."""
    return check("mteb.abstasks.abstask.get_abstask_prompt")(task_name)
