"""mteb's benchmarks as suites: a benchmark's name (as mteb spells it, one of mteb's aliases, or its short alias)
-> the task specs with exactly the splits and subsets the benchmark selects.

A task whose selection equals its default spec (the task file, else mteb's metadata) is named as usual, so a
benchmark run and a `task=` run share their results. A task the benchmark narrows or widens (other subsets)
is named `<Task>@<short alias>` (a Hydra choice of its own, registered like any mteb task without a file): its
spec carries the benchmark's subsets, so the run's identity says so. A task of several splits, a non-text
task or a task type evalkit does not run is refused with one line naming them: running part of a benchmark
under its name would report a different benchmark.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import Callable

from evalkit import EvalkitError
from evalkit.config import TaskSpec, suggest

QUALIFIER = "@"  # <Task>@<short alias>: the task as a benchmark selects it


def short_alias(name: str) -> str:
    """`MTEB(eng, v2)` -> `mteb_eng_v2`: lower case, every run of other characters one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@lru_cache(maxsize=1)
def _registry() -> dict[str, object]:
    """Every name a benchmark answers to -> mteb's Benchmark: its name, mteb's aliases, and the short alias of
    each (imports mteb)."""
    import mteb

    table: dict[str, object] = {}
    for bench in mteb.get_benchmarks():
        for key in (bench.name, *(bench.aliases or ())):
            table.setdefault(key, bench)
            table.setdefault(short_alias(key), bench)
    return table


def find_benchmark(name: str):
    """mteb's Benchmark of that name, mteb alias or short alias; None when there is none."""
    return _registry().get(name) or _registry().get(short_alias(name))


def get_benchmark(name: str):
    bench = find_benchmark(name)
    if bench is None:
        names = sorted({b.name for b in _registry().values()})
        raise EvalkitError(f"unknown mteb benchmark {name!r}{suggest(name, names)}")
    return bench


def benchmark_specs(name: str, base_spec: Callable[[str], TaskSpec]) -> dict[str, TaskSpec]:
    """Task name (as `task=` and a sweep take it) -> spec, for every task of the benchmark, in mteb's order;
    `base_spec` (tasks.get_task_spec) gives evalkit's default spec of an mteb task (passed in, so this module
    sits below the task registry and the registry can ask it about `<Task>@<benchmark>` names)."""
    from evalkit.conf_path import config_dirs

    return dict(_benchmark_specs(get_benchmark(name).name, tuple(config_dirs()), base_spec))


@lru_cache(maxsize=8)
def _benchmark_specs(bench_name: str, dirs: tuple, base_spec) -> tuple[tuple[str, TaskSpec], ...]:
    """Cached per set of config folders: a user's task file changes a task's default spec."""
    bench = get_benchmark(bench_name)
    alias = short_alias(bench.name)
    specs, refused = {}, []
    for task in bench.tasks:
        meta = task.metadata
        if len(task.eval_splits) != 1:
            refused.append(f"{meta.name} (splits {', '.join(task.eval_splits)}: evalkit runs one split per task)")
            continue
        try:
            base = base_spec(meta.name)
        except EvalkitError as exc:
            refused.append(f"{meta.name} ({exc})")
            continue
        spec = selected(base, task.eval_splits[0], list(task.hf_subsets))
        specs[base.name if spec == base else f"{meta.name}{QUALIFIER}{alias}"] = spec
    if refused:
        raise EvalkitError(f"{bench.name}: evalkit cannot run {len(refused)} of its {len(bench.tasks)} tasks as "
                           f"the benchmark selects them: {'; '.join(refused[:3])}"
                           f"{f'; and {len(refused) - 3} more' if len(refused) > 3 else ''}")
    return tuple(specs.items())


def selected(base: TaskSpec, split: str, subsets: list[str]) -> TaskSpec:
    """`base` with the benchmark's split and subsets; `base` itself when they are the ones it evaluates. The
    headline subset stays the base's where the benchmark keeps it, else the benchmark's first."""
    if split == base.split and subsets == (base.hf_subsets or [base.hf_subset]):
        return base
    headline = base.hf_subset if base.hf_subset in subsets else subsets[0]
    return replace(base, split=split, hf_subset=headline, hf_subsets=None if subsets == [headline] else subsets)


def benchmark_task_names(name: str, base_spec: Callable[[str], TaskSpec]) -> list[str]:
    """The task names of a benchmark, as a sweep takes them."""
    return list(benchmark_specs(name, base_spec))


def qualified_spec(name: str, base_spec: Callable[[str], TaskSpec]) -> TaskSpec:
    """The spec of `<Task>@<short alias>`: the task as that benchmark selects it."""
    task, _, alias = name.partition(QUALIFIER)
    specs = benchmark_specs(alias, base_spec)
    if name not in specs:
        raise EvalkitError(f"unknown task {name!r}: {get_benchmark(alias).name} selects {task} as evalkit's "
                           f"default spec does (task={task})" if task in specs else
                           f"unknown task {name!r}: {task} is not a task of {get_benchmark(alias).name}")
    return specs[name]


def benchmark_rows() -> list[tuple[str, str, str, int]]:
    """(short alias, name, mteb's aliases, number of tasks) of every mteb benchmark, by name."""
    benches = {id(b): b for b in _registry().values()}.values()
    return sorted(((short_alias(b.name), b.name, ", ".join(b.aliases or ()), len(b.tasks)) for b in benches),
                  key=lambda row: row[1].lower())


def print_benchmarks(ours: dict[str, dict]) -> None:
    """`evalkit list benchmarks`: every benchmark mteb defines, by the names suite= takes (`ours`: evalkit's and
    the user's sweep suites, whose names win)."""
    rows = benchmark_rows()
    print(f"{'suite= (short alias)':<28} {'suite= (as mteb spells it)':<32} {'tasks':>5}  mteb's aliases")
    for alias, name, aliases, count in rows:
        shown = alias if alias not in ours or (ours[alias] or {}).get("benchmark") == name else f"({alias})"
        print(f"{shown:<28} {chr(34) + name + chr(34):<32} {count:>5}  {aliases}")
    print(f"\n{len(rows)} mteb benchmarks. A short alias in brackets is evalkit's own suite of that name; use the "
          f"benchmark's name. A benchmark with non-text tasks, or a task of several splits, is refused by name.")
