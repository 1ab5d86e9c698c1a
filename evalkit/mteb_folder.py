"""Local mteb dataset folders -> a loaded mteb task, exactly as mteb's own `load_data` would load it.

A folder holds one Hugging Face config of the task's dataset at the revision mteb pins, per split:
`<split>.jsonl`, `<split>.parquet`, `<split>/*.parquet` shards, or a `datasets.save_to_disk` folder; a
multilingual task's folder holds one such folder per subset (`<hf_subset>/<split>.jsonl`), or, for the tasks
mteb loads fast, the single `default` config with a `lang` column. mteb's `AbsTask.load_data` runs as it is,
with `load_dataset` answered from the folder (`evalkit.mteb_hooks.load_data_from`), so the task's own
`dataset_transform` and every evaluator default stay mteb's. Whatever a folder lacks is one line naming it: the split, the subset, the columns the
evaluator reads, or the file and line that does not decode.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from evalkit import EvalkitError
from evalkit.beir_folder import json_objects
from evalkit.errors import first_line

SPLIT_FILES = (".jsonl", ".parquet")


def _check_jsonl(path: Path) -> None:
    """Every line one JSON object (the first that is not: one error naming file:line), and at least one."""
    if not sum(1 for _ in json_objects(path)):
        raise EvalkitError(f"{path}: the file has no rows")


def _read_split(path: Path):
    from datasets import Dataset, concatenate_datasets

    try:
        if path.is_dir():
            return concatenate_datasets([Dataset.from_parquet(str(p)) for p in sorted(path.glob("*.parquet"))])
        if path.suffix == ".jsonl":
            _check_jsonl(path)
            return Dataset.from_json(str(path))
        return Dataset.from_parquet(str(path))
    except EvalkitError:
        raise
    except Exception as exc:  # pyarrow and datasets raise many kinds; the user needs one line
        raise EvalkitError(f"{path}: unreadable ({first_line(exc, 160, with_type=True)})") from exc


def read_config(folder: Path):
    """One Hugging Face config as a DatasetDict: per-split files, parquet shard folders, or save_to_disk."""
    from datasets import DatasetDict, load_from_disk

    if not folder.is_dir():
        raise EvalkitError(f"data_dir does not exist or is not a folder: {folder}")
    if (folder / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk
        return load_from_disk(str(folder))
    if (folder / "state.json").is_file():  # Dataset.save_to_disk: the folder is one split
        return DatasetDict({folder.name: load_from_disk(str(folder))})
    splits = {}
    for path in sorted(folder.iterdir()):
        split = path.name.removesuffix(path.suffix) if path.is_file() else path.name
        if (path.is_file() and path.suffix in SPLIT_FILES) or (path.is_dir() and any(path.glob("*.parquet"))):
            if split in splits:
                raise EvalkitError(f"{folder}: split {split!r} is given twice ({path.name} and another file)")
            splits[split] = _read_split(path)
    if not splits:
        raise EvalkitError(f"{folder} holds no split (<split>.jsonl, <split>.parquet, <split>/*.parquet or a "
                           f"datasets.save_to_disk folder)")
    return DatasetDict(splits)


def _subsets(task, folder: Path, wanted: list[str] | None) -> list[str] | None:
    """The subsets to load: those asked for (all must be there), else those the folder holds; None for a
    fast-loading task's single `default` config (its subsets come from the `lang` column)."""
    candidates = wanted or list(task.hf_subsets)
    present = [s for s in candidates if (folder / s).is_dir()]
    if task.fast_loading and not present:
        return None
    missing = [s for s in wanted or [] if s not in present]
    if missing:
        raise EvalkitError(f"data_dir {folder} has no subset folder {', '.join(missing)}/ for {task.metadata.name}")
    if not present:
        raise EvalkitError(f"data_dir {folder} holds no subset folder of {task.metadata.name} (a multilingual task: "
                           f"<hf_subset>/<split>.jsonl, e.g. {candidates[0]}/)")
    return present


def load_mteb_folder(task, folder: Path, hf_subsets: list[str] | None = None) -> list[str]:
    """Load `folder` into the mteb task through mteb's own load_data; returns the subsets loaded."""
    from mteb.abstasks import AbsTask

    from evalkit.mteb_hooks import load_data_from

    name = task.metadata.name
    if not folder.is_dir():
        raise EvalkitError(f"data_dir does not exist or is not a folder: {folder}")
    if type(task).load_data is not AbsTask.load_data:
        raise EvalkitError(f"{name} loads its data its own way (mteb's {type(task).__name__} overrides load_data); "
                           f"data_dir works for tasks that read one Hugging Face dataset, and for retrieval from a "
                           f"BEIR folder")
    if (folder / "corpus.jsonl").is_file():
        raise EvalkitError(f"data_dir {folder} is a BEIR folder, but {name} is a {task.metadata.type} task: give its "
                           f"mteb dataset folder (<split>.jsonl, ...)")
    multilingual = task.metadata.is_multilingual
    if multilingual:
        subsets = _subsets(task, folder, hf_subsets)
        if subsets is not None:
            task.hf_subsets = subsets
            task.fast_loading = False  # one folder per subset: load them one by one, not the `default` config
        elif hf_subsets:
            task.hf_subsets = list(hf_subsets)

    def from_folder(path=None, name=None, split=None, **kwargs):  # mteb's load_dataset(**metadata.dataset, ...)
        config = read_config(folder / name if multilingual and name else folder)
        if split is None:
            return config
        if split not in config:
            raise EvalkitError(f"data_dir {folder} has no split {split!r} (has {', '.join(config)})")
        return config[split]

    try:
        load_data_from(task, from_folder)
    except EvalkitError:
        raise
    except Exception as exc:  # a task's dataset_transform meeting columns it does not expect
        raise EvalkitError(f"{name}: loading {folder} as mteb does failed "
                           f"({first_line(exc, 200, with_type=True)})") from exc
    if multilingual:
        if hf_subsets and any(s not in task.dataset for s in hf_subsets):
            missing = [s for s in hf_subsets if s not in task.dataset]
            raise EvalkitError(f"data_dir {folder} has no rows of subset {', '.join(missing)} for {name}")
        task.hf_subsets = [s for s in task.hf_subsets if s in task.dataset]
        if not task.hf_subsets:
            raise EvalkitError(f"data_dir {folder} has no rows of any subset of {name} (its 'lang' column)")
    check_columns(task, folder)
    return list(task.hf_subsets) if multilingual else ["default"]


def task_data_fingerprint(task) -> str:
    """sha256 (16 hex digits) of a loaded task's data as mteb evaluates it: every subset, split and row, in
    order (row order can matter: classification samples its training sets by position), after
    dataset_transform. Another layout of the same data (parquet, save_to_disk, key order) gives the same."""
    h = hashlib.sha256()
    configs = {s: task.dataset[s] for s in task.hf_subsets} if task.metadata.is_multilingual else {"": task.dataset}
    for subset, config in sorted(configs.items()):
        for split in sorted(config):
            for batch in config[split].iter(batch_size=1000):
                h.update(json.dumps([subset, split, batch], sort_keys=True, ensure_ascii=False, default=str).encode())
    return "sha256:" + h.hexdigest()[:16]


def required_columns(task) -> tuple[list[str], list[str]]:
    """(columns, extra splits) the task's evaluator reads from every evaluated split, after dataset_transform.
    They are class attributes of each mteb task family (a task may override them), not metadata."""
    from mteb import abstasks as a

    def names(column) -> list[str]:  # a str, or a {column: modality} mapping, or a list of columns
        return [column] if isinstance(column, str) else list(column)

    if isinstance(task, a.AbsTaskSTS):
        return [*names(task.column_names[0]), *names(task.column_names[1]), "score"], []
    if isinstance(task, a.AbsTaskPairClassification):
        return [*names(task.input1_column_name), *names(task.input2_column_name), task.label_column_name], []
    if isinstance(task, a.AbsTaskSummarization):
        return [task.text_column_name, task.human_summaries_column_name, task.machine_summaries_column_name,
                task.relevancy_column_name], []
    if isinstance(task, a.AbsTaskClassification):  # multilabel and regression too
        extra = [] if task.is_cross_validation else [task.train_split]
        return [*names(task.input_column_name), task.label_column_name], extra
    if isinstance(task, (a.AbsTaskClustering, a.AbsTaskClusteringLegacy, a.AbsTaskZeroShotClassification)):
        return [*names(task.input_column_name), task.label_column_name], []
    if isinstance(task, a.AbsTaskBitextMining) and not task.parallel_subsets:
        from evalkit.mteb_hooks import bitext_columns

        return bitext_columns(task), []
    return [], []  # a layout evalkit does not know: mteb's own errors apply


def check_columns(task, folder: Path) -> None:
    """Every evaluated split (and the training split) exists with the columns the evaluator reads."""
    columns, extra = required_columns(task)
    if not columns:
        return
    name = task.metadata.name
    subsets = task.hf_subsets if task.metadata.is_multilingual else [None]
    for subset in subsets:
        data = task.dataset[subset] if subset is not None else task.dataset
        for split in [*task.eval_splits, *extra]:
            where = f"{subset}/{split}" if subset else split
            if split not in data:
                raise EvalkitError(f"data_dir {folder} has no split {where!r} for {name} (has "
                                   f"{', '.join(data) or 'none'}; after mteb's dataset_transform)")
            have = data[split].column_names
            missing = [c for c in columns if c not in have]
            if missing:
                raise EvalkitError(f"data_dir {folder}: split {where!r} lacks column {', '.join(missing)} "
                                   f"({name} reads {', '.join(columns)}; has {', '.join(have)})")
