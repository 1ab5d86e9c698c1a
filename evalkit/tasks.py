"""The task registry: `tasks/<name>.yaml` (the user's config folders first, then evalkit's) -> TaskSpec,
name resolution, and the mteb task object.

A task file is how a task gets the paper's instruction and aliases; any other mteb task works by its
mteb name, its spec built from mteb's metadata (`spec_from_mteb`) and its instruction resolved by
`evalkit.instructions`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path


from evalkit import EvalkitError
from evalkit.conf_path import CONF_DIR, config_dirs, config_files, shown
from evalkit.config import TASK_TYPES, TaskSpec, TaskType, check_task, load_yaml, structured, suggest
from evalkit.files import atomic_write, cache_root


FROM_MTEB = ("type", "split", "hf_subset", "metric")  # from mteb's metadata unless the task file sets them


def task_files() -> dict[str, TaskSpec]:
    """Every task file of the config folders as written, keyed by its CLI name (the file stem): names,
    aliases and instructions, without importing mteb (the fields of FROM_MTEB a file leaves out are unset)."""
    return {name: spec for name, (spec, _) in _read_task_files(tuple(config_files("tasks").items())).items()}


def file_keys(name: str) -> frozenset[str]:
    """The keys the task file of `name` (a CLI name) writes itself."""
    return dict(_read_task_files(tuple(config_files("tasks").items())))[name][1]


def load_task_specs() -> dict[str, TaskSpec]:
    """Every task file of the config folders, complete: what a file leaves out taken from mteb's metadata
    (imports mteb)."""
    return _complete_specs(tuple(config_files("tasks").items()))


def packaged_task_specs() -> dict[str, TaskSpec]:
    """The task files evalkit ships, complete, whatever a user's config folder shadows them with."""
    return _complete_specs(tuple((path.stem, path) for path in sorted((CONF_DIR / "tasks").glob("*.yaml"))))


@lru_cache(maxsize=4)
def _complete_specs(files: tuple[tuple[str, Path], ...]) -> dict[str, TaskSpec]:
    return {name: complete_spec(spec, given) for name, (spec, given) in _read_task_files(files).items()}


def complete_spec(spec: TaskSpec, given: frozenset[str] = frozenset(FROM_MTEB)) -> TaskSpec:
    """`spec` with the fields of FROM_MTEB its file did not give (`given`, or any that is unset) from mteb's
    metadata of its task: type, main score, eval split (test where it has one), English subset."""
    missing = [key for key in FROM_MTEB if key not in given or getattr(spec, key) is None]
    if not missing:
        return spec
    import mteb

    try:
        meta = mteb.get_task(spec.mteb_task).metadata
    except (KeyError, ValueError) as exc:
        raise EvalkitError(f"mteb has no task {spec.mteb_task!r} (tasks/{spec.name}.yaml): {exc}") from exc
    derived = spec_from_mteb(meta)
    return replace(spec, **{key: getattr(derived, key) for key in missing})


@lru_cache(maxsize=4)
def _read_task_files(files: tuple[tuple[str, Path], ...]) -> dict[str, tuple[TaskSpec, frozenset[str]]]:
    """CLI name -> (the file's spec as written, the keys it gives); mteb_task defaults to the file name."""
    specs: dict[str, tuple[TaskSpec, frozenset[str]]] = {}
    for _, path in files:
        where = shown(path)
        data = load_yaml(path) or {}
        if not isinstance(data, dict):
            raise EvalkitError(f"{where}: expected a mapping of keys (instruction: ..., aliases: [...])")
        spec = check_task(structured(TaskSpec, {"name": path.stem, "mteb_task": path.stem, **data}, where), where)
        if spec.instruction is None:
            raise EvalkitError(f"{where}: no instruction (a task file gives the paper's instruction)")
        specs[path.stem] = (spec, frozenset(data))
    return specs


def _lookup_table(specs: dict[str, TaskSpec]) -> dict[str, str | None]:
    """Lower-cased name, alias and mteb name -> CLI name. File names and aliases are unique; an mteb name that
    two tasks share (a user's variant of a task) resolves to the task of that file name, else to None (ambiguous)."""
    table: dict[str, str | None] = {}
    for name, spec in specs.items():
        for key in (name, *spec.aliases):
            other = table.setdefault(key.lower(), name)
            if other != name:
                raise EvalkitError(f"task name {key!r} is claimed by both tasks/{other}.yaml and tasks/{name}.yaml")
    names = {name.lower() for name in specs}
    for name, spec in specs.items():
        key = spec.mteb_task.lower()
        if table.setdefault(key, name) != name and key not in names:
            table[key] = None
    return table


def resolve_task_name(name: str, specs: dict[str, TaskSpec] | None = None) -> str:
    """CLI name for `name` (case-insensitive; mteb names and BEIR aliases work too)."""
    if "@" in name:  # <Task>@<benchmark>: checked here, its spec from evalkit.benchmarks
        return get_task_spec(name).name and name
    specs = task_files() if specs is None else specs
    table = _lookup_table(specs)
    if name.lower() in table and table[name.lower()] is None:
        sharing = [n for n, s in specs.items() if s.mteb_task.lower() == name.lower()]
        raise EvalkitError(f"task name {name!r} is the mteb task of {' and '.join(sharing)}: name one of them")
    if name.lower() in table:
        return table[name.lower()]
    known = mteb_task_names()
    if name.lower() in known:
        return known[name.lower()]
    names = sorted(set(specs) | {a for s in specs.values() for a in s.aliases} | set(known.values()))
    raise EvalkitError(f"unknown task {name!r}{suggest(name, names)}")


def get_task_spec(name: str) -> TaskSpec:
    """The task file's spec (complete), else one built from mteb's metadata (instruction resolved later)."""
    if "@" in name:  # <Task>@<benchmark>: the task as an mteb benchmark selects it
        from evalkit.benchmarks import qualified_spec

        return qualified_spec(name, get_task_spec)
    resolved = resolve_task_name(name, task_files())
    if resolved in task_files():
        return load_task_specs()[resolved]
    import mteb

    return spec_from_mteb(mteb.get_task(resolved).metadata)


@lru_cache(maxsize=1)
def mteb_task_names() -> dict[str, str]:
    """Lower-cased -> mteb name, for every task mteb knows. Read from `mteb_names_index()`, written the first
    time mteb is imported for it, so that a name check (an unknown task) after that imports no mteb."""
    from evalkit.versions import installed_version

    index = mteb_names_index(installed_version("mteb"))
    try:
        names = json.loads(index.read_text(encoding="utf-8"))
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return {n.lower(): n for n in names}
    except (OSError, ValueError):
        pass  # none yet, or damaged: rebuilt below
    import mteb

    names = sorted(t.metadata.name for t in mteb.get_tasks(exclude_superseded=False, exclude_aggregate=False))
    try:
        atomic_write(index, json.dumps(names))
    except OSError:
        pass  # a read-only cache: the next check imports mteb again, nothing else changes
    return {n.lower(): n for n in names}


def mteb_names_index(version: str | None) -> Path:
    """The file listing mteb's task names for this mteb version (under evalkit's cache root)."""
    return cache_root() / "mteb-task-names" / f"mteb-{version}.json"


def spec_from_mteb(meta) -> TaskSpec:
    """A TaskSpec from mteb's task metadata: its type, eval split (test where it has one), main score, and
    the English subset of a multilingual task (else its first); no instruction yet."""
    if not set(meta.modalities) <= {"text"}:
        raise EvalkitError(f"{meta.name} is a {'+'.join(meta.modalities)} task; evalkit embeds text only")
    if meta.type not in TASK_TYPES:
        raise EvalkitError(f"{meta.name}: evalkit does not run mteb's {meta.type} tasks (it runs {', '.join(TASK_TYPES)})")
    split = "test" if "test" in meta.eval_splits else meta.eval_splits[0]
    subset = "default"
    if meta.is_multilingual:
        langs = meta.hf_subsets_to_langscripts
        subset = next((s for s in meta.hf_subsets if all(lang.startswith("eng-") for lang in langs[s])),
                      meta.hf_subsets[0])
    return TaskSpec(name=meta.name, mteb_task=meta.name, type=TaskType(meta.type), split=split, hf_subset=subset,
                    metric=meta.main_score)


def spec_for_metadata(meta) -> TaskSpec:
    """The spec of the task mteb hands an encoder: its task file's, else built from the metadata."""
    return specs_by_mteb_name().get(meta.name) or spec_from_mteb(meta)


def specs_by_mteb_name() -> dict[str, TaskSpec]:
    """mteb task name -> its spec; where tasks share an mteb task, the one named after it."""
    ordered = sorted(load_task_specs().values(), key=lambda spec: spec.name == spec.mteb_task)
    return {spec.mteb_task: spec for spec in ordered}


def get_mteb_task(spec: TaskSpec, all_subsets: bool = False):
    """The mteb task restricted to the spec's split and subsets (`hf_subsets`, else `hf_subset`; every subset
    with `all_subsets`, for a local folder to pick from)."""
    import mteb

    subsets = None if all_subsets and spec.hf_subsets is None else (spec.hf_subsets or [spec.hf_subset])
    try:
        task = mteb.get_task(spec.mteb_task, eval_splits=[spec.split], hf_subsets=subsets)
    except (KeyError, ValueError) as exc:
        raise EvalkitError(f"mteb has no task {spec.mteb_task!r} (tasks/{spec.name}.yaml): {exc}") from exc
    return task


def subtask_names(task) -> list[str]:
    """mteb names of the tasks that actually call the encoder (an aggregate's parts, else the task)."""
    parts = getattr(task.metadata, "tasks", None) or getattr(task, "tasks", None)
    if parts:
        return [p.metadata.name for p in parts]
    return [task.metadata.name]


def suite_task_names(name: str) -> list[str]:
    """CLI names of a suite in suites.yaml, of an mteb benchmark (`evalkit.benchmarks`), or of a comma-separated
    list of task names."""
    from evalkit.benchmarks import benchmark_task_names, find_benchmark

    suites = sweep_suites()
    specs = task_files()
    if name in suites:
        wanted = suites[name] or {}
        if "benchmark" in wanted:
            return benchmark_task_names(wanted["benchmark"], get_task_spec)
        if set(wanted) & set(FROM_MTEB):  # a filter on what mteb's metadata says: the complete specs
            specs = load_task_specs()
        return [n for n, spec in specs.items() if all(getattr(spec, k) == v for k, v in wanted.items())]
    if "," in name or name.lower() in _lookup_table(specs):
        try:
            return [resolve_task_name(part.strip(), specs) for part in name.split(",")]
        except EvalkitError:
            if find_benchmark(name) is None:  # "MTEB(eng, v2)" holds a comma
                raise
    if find_benchmark(name) is not None:
        return benchmark_task_names(name, get_task_spec)
    raise EvalkitError(f"unknown suite {name!r}{suggest(name, sorted(suites))}")


def sweep_suites() -> dict[str, dict]:
    """Suite name -> task filter, from every config folder's suites.yaml (a user's suite of a name wins)."""
    suites: dict[str, dict] = {}
    for path in reversed([d / "suites.yaml" for d in config_dirs() if (d / "suites.yaml").is_file()]):
        suites.update(load_yaml(path) or {})
    return suites
