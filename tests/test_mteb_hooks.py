"""The mteb boundary: every private hook matches the installed mteb, and each one that stops matching (gone, or
its parameters changed) stops the function that uses it with one line naming mteb's version and the hook."""

from __future__ import annotations

import pytest

from evalkit import EvalkitError, mteb_hooks
from evalkit.mteb_hooks import HOOKS, mteb_version


def noop(*args, **kwargs):
    return None


def task(name: str):
    import mteb

    return mteb.get_task(name)


def use_loader():
    from datasets import Dataset

    return mteb_hooks.loader(Dataset.from_dict({"text": ["a"]}), task("STSBenchmark").metadata, None)


# each hook -> the evalkit function that relies on it, called as a run would call it
USES = {
    "mteb.abstasks.AbsTask._evaluate_subset": lambda: mteb_hooks.watch_item_scores(task("STSBenchmark"), noop),
    "mteb.abstasks.AbsTaskSTS._calculate_scores": lambda: mteb_hooks.watch_item_scores(task("STSBenchmark"), noop),
    "mteb.abstasks.AbsTaskPairClassification._compute_metrics":
        lambda: mteb_hooks.watch_item_scores(task("SprintDuplicateQuestions"), noop),
    "mteb.abstasks.AbsTaskSummarization.evaluator": lambda: mteb_hooks.watch_item_scores(task("SummEval"), noop),
    "mteb._evaluators.text.summarization_evaluator.SummarizationEvaluator._calculate_metrics":
        lambda: mteb_hooks.watch_item_scores(task("SummEval"), noop),
    "mteb._evaluators.text.summarization_evaluator.DeprecatedSummarizationEvaluator":
        lambda: mteb_hooks.deprecated_summarization(task("SummEval")),
    "mteb.abstasks.AbsTaskRetrieval.task_specific_scores": lambda: mteb_hooks.watch_query_scores(task("SciFact"), noop),
    "mteb.abstasks.abstask.load_dataset": lambda: mteb_hooks.load_data_from(task("STSBenchmark"), noop),
    "mteb.abstasks.AbsTask.load_data": lambda: mteb_hooks.load_data_from(task("STSBenchmark"), noop),
    "mteb._create_dataloaders.create_dataloader": use_loader,
    "mteb.abstasks.AbsTaskBitextMining._get_pairs": lambda: mteb_hooks.bitext_columns(task("BUCC")),
    "mteb.abstasks.abstask.get_abstask_prompt": lambda: mteb_hooks.default_prompt("STSBenchmark"),
}


def owner_and_name(path: str):
    parent, _, name = path.rpartition(".")
    return mteb_hooks.resolve(parent), name


def assert_loud(exc_info, path: str) -> None:
    message = str(exc_info.value)
    assert "\n" not in message
    assert f"mteb {mteb_version()}" in message and path in message


@pytest.mark.unit
def test_every_hook_has_a_use_and_matches_the_installed_mteb():
    assert set(USES) == set(HOOKS)
    mteb_hooks.check_all()


@pytest.mark.unit
@pytest.mark.parametrize("path", sorted(HOOKS))
def test_a_hook_that_is_gone_is_one_line_naming_mteb_and_the_hook(path, monkeypatch):
    owner, name = owner_and_name(path)
    assert name in vars(owner), f"{path}: defined on another class; the test would not remove it"
    monkeypatch.delattr(owner, name)
    with pytest.raises(EvalkitError) as info:
        USES[path]()
    assert_loud(info, path)


@pytest.mark.unit
@pytest.mark.parametrize("path", sorted(p for p, h in HOOKS.items() if h.positional or h.keywords))
def test_a_hook_whose_parameters_changed_is_one_line_naming_mteb_and_the_hook(path, monkeypatch):
    owner, name = owner_and_name(path)

    def changed(self_or_first, something_else):
        return None

    monkeypatch.setattr(owner, name, changed)
    with pytest.raises(EvalkitError) as info:
        USES[path]()
    assert_loud(info, path)


@pytest.mark.unit
def test_a_load_data_that_no_longer_asks_load_dataset_is_loud(monkeypatch):
    """mteb loading another way would score the hub's data, not the folder's: refused, not run."""
    from mteb.abstasks import AbsTask

    def load_data(self, num_proc=None, **kwargs):
        self.data_loaded = True

    monkeypatch.setattr(AbsTask, "load_data", load_data)
    with pytest.raises(EvalkitError) as info:
        mteb_hooks.load_data_from(task("STSBenchmark"), noop)
    assert_loud(info, "mteb.abstasks.abstask.load_dataset")


@pytest.mark.unit
def test_a_task_own_override_is_the_one_watched():
    """A task that overrides the scoring method keeps its own: the watcher wraps the task's, not the base's."""
    sts = task("STSBenchmark")
    seen = []

    def own(scores, gold):
        return "own"

    sts._calculate_scores = own
    sts._evaluate_subset = lambda *a, hf_subset, **k: sts._calculate_scores({"x": 1}, [1.0])
    assert mteb_hooks.watch_item_scores(sts, lambda *a: seen.append(a))
    assert sts._evaluate_subset(None, None, hf_subset="default") == "own"
    assert seen == [("sts", "default", {"x": 1}, [1.0])]


@pytest.mark.unit
def test_only_this_module_touches_mteb_private_names():
    """No other evalkit module imports or reaches into mteb's private internals."""
    import re
    from pathlib import Path

    root = Path(mteb_hooks.__file__).parent
    private = re.compile(r"mteb\._|from mteb\.\S*\._|mock\.patch|\._(evaluate_subset|calculate_scores|compute_metrics|"
                         r"calculate_metrics|get_pairs)\b|task_specific_scores\s*=|\"descriptive_stats\"")
    offenders = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py") if p.name != "mteb_hooks.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1) if private.search(line)]
    assert offenders == []
