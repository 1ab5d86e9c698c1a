"""`python -m evalkit task=<name> [model=<name>] [key=value ...]`: a thin Hydra entry.

    python -m evalkit list                      tasks and models (no torch import)
    python -m evalkit task=scifact model=minilm data_dir=../shared/data/beir/scifact
    python -m evalkit -m task=scifact,nfcorpus  a sweep
    python -m evalkit plan suite=beir           size a job before starting it
    python -m evalkit cache info|clear          the embedding cache
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import hydra
from hydra.core.config_store import ConfigStore

from evalkit import EvalkitError
from evalkit.config import CONF_DIR, RunConfig, model_names, suggest, to_run_config
from evalkit.tasks import load_task_specs, resolve_task_name, suite_task_names


def fail(message: str) -> None:
    print(f"evalkit: error: {message}", file=sys.stderr)
    sys.exit(2)


def canonical_overrides(argv: list[str]) -> list[str]:
    """Resolve task names (case, mteb names, BEIR aliases) and check model names before Hydra sees them."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key == "suite":  # a sweep over the suite's tasks, those sharing texts one after the other
            from evalkit.plan import suite_run_order

            key, value = "task", ",".join(suite_run_order(suite_task_names(value)))
            if not {"-m", "--multirun"} & set(argv):
                out.insert(0, "--multirun")
        elif eq and key == "task":
            value = ",".join(resolve_task_name(v.strip()) for v in value.split(","))
        elif eq and key == "model":
            for name in value.split(","):
                if name.strip() not in model_names():
                    raise EvalkitError(f"unknown model {name.strip()!r}{suggest(name.strip(), model_names())}")
        out.append(f"{key}={value}" if eq else arg)
    return out


def register_configs() -> None:
    """The schema (`evalkit_schema`, named first in conf/config.yaml) and one `task` group entry per task file."""
    store = ConfigStore.instance()
    store.store(name="evalkit_schema", node=RunConfig)
    for name, spec in load_task_specs().items():
        store.store(group="task", name=name, node=spec)


def print_list() -> None:
    specs = load_task_specs()
    print(f"{'task':<40} {'type':<19} {'split':<6} {'metric':<32} aliases")
    for name, spec in specs.items():
        print(f"{name:<40} {spec.type:<19} {spec.split:<6} {spec.metric:<32} {','.join(spec.aliases)}")
    print(f"\n{len(specs)} tasks. models: {', '.join(model_names())}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_job(cfg) -> None:
    from evalkit.runner import run

    try:
        summary = run(to_run_config(cfg))
    except EvalkitError as exc:
        fail(str(exc))
    if not summary.main_rank:
        return
    if summary.skipped:
        print(f"{summary.mteb_task}: already done, skipped ({summary.path}; overwrite=true to redo)")
    else:
        others = "".join(f", {k} = {v:.5f}" for k, v in summary.scores.items())
        print(f"{summary.mteb_task}: {summary.metric} = {summary.score:.5f}{others} "
              f"({summary.wall_time_s:.1f} s) -> {summary.path}")


@contextmanager
def hydra_argv(argv: list[str]):
    """Hydra reads its overrides from sys.argv: hand it `argv` for the duration of the call only."""
    saved = sys.argv
    sys.argv = [saved[0], *argv]
    try:
        yield
    finally:
        sys.argv = saved


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["cache"]:
            from evalkit.encoding.cache import main as cache_main

            sys.exit(cache_main(argv[1:]))
        if argv[:1] == ["list"]:
            print_list()
            return
        if argv[:1] == ["plan"]:
            from evalkit.plan import main as plan

            plan(argv[1:])
            return
        argv = canonical_overrides(argv)
        register_configs()
    except EvalkitError as exc:
        fail(str(exc))
    with hydra_argv(argv):
        hydra_job()


if __name__ == "__main__":
    main()
