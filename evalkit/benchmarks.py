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


def benchmark_specs(name: str) -> dict[str, TaskSpec]:
    """Task name (as `task=` and a sweep take it) -> spec, for every task of the benchmark, in mteb's order."""
    from evalkit.conf_path import config_dirs

    return dict(_benchmark_specs(get_benchmark(name).name, tuple(config_dirs())))


@lru_cache(maxsize=8)
def _benchmark_specs(bench_name: str, dirs: tuple) -> tuple[tuple[str, TaskSpec], ...]:
    """Cached per set of config folders: a user's task file changes a task's default spec."""
    from evalkit.tasks import get_task_spec

    bench = get_benchmark(bench_name)
    alias = short_alias(bench.name)
    specs, refused = {}, []
    for task in bench.tasks:
        meta = task.metadata
        if len(task.eval_splits) != 1:
            refused.append(f"{meta.name} (splits {', '.join(task.eval_splits)}: evalkit runs one split per task)")
            continue
        try:
            base = get_task_spec(meta.name)
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


def benchmark_task_names(name: str) -> list[str]:
    """The task names of a benchmark, as a sweep takes them."""
    return list(benchmark_specs(name))


def qualified_spec(name: str) -> TaskSpec:
    """The spec of `<Task>@<short alias>`: the task as that benchmark selects it."""
    task, _, alias = name.partition(QUALIFIER)
    specs = benchmark_specs(alias)
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


def print_benchmarks() -> None:
    """`evalkit list benchmarks`: every benchmark mteb defines, by the names suite= takes."""
    from evalkit.tasks import sweep_suites

    ours = sweep_suites()
    rows = benchmark_rows()
    print(f"{'suite= (short alias)':<28} {'suite= (as mteb spells it)':<32} {'tasks':>5}  mteb's aliases")
    for alias, name, aliases, count in rows:
        shown = alias if alias not in ours or (ours[alias] or {}).get("benchmark") == name else f"({alias})"
        print(f"{shown:<28} {chr(34) + name + chr(34):<32} {count:>5}  {aliases}")
    print(f"\n{len(rows)} mteb benchmarks. A short alias in brackets is evalkit's own suite of that name; use the "
          f"benchmark's name. A benchmark with non-text tasks, or a task of several splits, is refused by name.")


def instruction_rows(name: str, model: str = "e5_mistral_7b") -> list[tuple[str, str, str, str]]:
    """(task, instruction source, evalkit's instruction, what mteb's own entry of the model would use) per task
    of a benchmark: evalkit's rule (task file, mteb's task prompt, mteb's type default) against the instruction
    mteb's ModelMeta loader for that model picks (its `get_instruction`, queries), '' where mteb has no entry."""
    from evalkit.config import load_model_config
    from evalkit.instructions import resolve_instruction

    cfg = load_model_config(model)
    if cfg.prompt is None:
        raise EvalkitError(f"model {model!r} takes no instruction")
    mteb_pick = _mteb_instruction_picker(cfg.name)
    rows = []
    for spec in benchmark_specs(name).values():
        resolved, source = resolve_instruction(spec)
        rows.append((spec.mteb_task, source, resolved.instruction, mteb_pick(spec.mteb_task) if mteb_pick else ""))
    return rows


def _mteb_instruction_picker(model_name: str):
    """A function task name -> the query instruction mteb's registry entry of `model_name` uses, by mteb's own
    `get_instruction`; None when mteb has no instruct entry for the model. Refuses an entry whose loader
    arguments would change the pick (its own prompts or priority), naming the mteb version."""
    import mteb
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.types import PromptType

    try:
        meta = mteb.get_model_meta(model_name)
    except (KeyError, ValueError):
        return None
    kwargs = meta.loader_kwargs or {}
    get_instruction = getattr(meta.loader, "get_instruction", None)
    if not meta.use_instructions or get_instruction is None:
        return None
    if {"prompts_dict", "prompt_priority"} & set(kwargs):
        raise EvalkitError(f"mteb {mteb.__version__}: {model_name}'s entry sets its own prompts; evalkit's reading "
                           f"of its instructions does not cover that")
    probe = type("Probe", (), {"prompt_priority": AbsEncoder.prompt_priority, "prompts_dict": None})()
    return lambda task: get_instruction(probe, mteb.get_task(task).metadata, PromptType.query)
