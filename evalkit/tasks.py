"""The task registry: `tasks/<name>.yaml` -> TaskSpec, name resolution, and the mteb task object."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from evalkit import EvalkitError
from evalkit.config import TASKS_DIR, TaskSpec, check_task, structured, suggest


@lru_cache(maxsize=4)
def load_task_specs(tasks_dir: Path = TASKS_DIR) -> dict[str, TaskSpec]:
    """Every task file, keyed by its CLI name (the file stem)."""
    specs: dict[str, TaskSpec] = {}
    for path in sorted(Path(tasks_dir).glob("*.yaml")):
        where = f"tasks/{path.name}"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise EvalkitError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
        specs[path.stem] = check_task(structured(TaskSpec, {"name": path.stem, **data}, where), where)
    return specs


def _lookup_table(specs: dict[str, TaskSpec]) -> dict[str, str]:
    """Lower-cased name, mteb name and alias -> CLI name."""
    table: dict[str, str] = {}
    for name, spec in specs.items():
        for key in (name, spec.mteb_task, *spec.aliases):
            other = table.setdefault(key.lower(), name)
            if other != name:
                raise EvalkitError(f"task name {key!r} is claimed by both tasks/{other}.yaml and tasks/{name}.yaml")
    return table


def resolve_task_name(name: str, specs: dict[str, TaskSpec] | None = None) -> str:
    """CLI name for `name` (case-insensitive; mteb names and BEIR aliases work too)."""
    specs = load_task_specs() if specs is None else specs
    table = _lookup_table(specs)
    if name.lower() in table:
        return table[name.lower()]
    raise EvalkitError(f"unknown task {name!r}{suggest(name, sorted(set(specs) | {a for s in specs.values() for a in s.aliases}))}")


def get_task_spec(name: str) -> TaskSpec:
    specs = load_task_specs()
    return specs[resolve_task_name(name, specs)]


def specs_by_mteb_name() -> dict[str, TaskSpec]:
    return {spec.mteb_task: spec for spec in load_task_specs().values()}


def get_mteb_task(spec: TaskSpec):
    """The mteb task restricted to the spec's split and subset."""
    import mteb

    try:
        task = mteb.get_task(spec.mteb_task, eval_splits=[spec.split], hf_subsets=[spec.hf_subset])
    except (KeyError, ValueError) as exc:
        raise EvalkitError(f"mteb has no task {spec.mteb_task!r} (tasks/{spec.name}.yaml): {exc}") from None
    return task


def subtask_names(task) -> list[str]:
    """mteb names of the tasks that actually call the encoder (an aggregate's parts, else the task)."""
    parts = getattr(task.metadata, "tasks", None) or getattr(task, "tasks", None)
    if parts:
        return [p.metadata.name for p in parts]
    return [task.metadata.name]


def suite_task_names(name: str) -> list[str]:
    """CLI names of a suite in conf/suites.yaml, or of a comma-separated list of task names."""
    from evalkit.config import CONF_DIR

    suites = yaml.safe_load((CONF_DIR / "suites.yaml").read_text(encoding="utf-8"))
    specs = load_task_specs()
    if name in suites:
        wanted = suites[name] or {}
        return [n for n, spec in specs.items() if all(getattr(spec, k) == v for k, v in wanted.items())]
    if "," in name or name.lower() in _lookup_table(specs):
        return [resolve_task_name(part.strip(), specs) for part in name.split(",")]
    raise EvalkitError(f"unknown suite {name!r}{suggest(name, sorted(suites))}")
