"""`evalkit` (or `python -m evalkit`): run a task, or one of the commands; `evalkit --help` says which.

A run is a thin Hydra entry over `runner.run`; `--help`, `list` and bad keys are answered before Hydra (or
torch) is imported, so they take a fraction of a second.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from evalkit import EvalkitError
from evalkit.conf_path import CONFIG_PATH_ENV, add_config_dirs, config_dirs
from evalkit.config import (EncodeConfig, ModelConfig, TaskSpec, check_config_files, check_override_key, model_names,
                            register_primary_config, searchpath_override, suggest, to_run_config)
from evalkit.errors import print_error
from evalkit.tasks import (FROM_MTEB, file_keys, get_task_spec, resolve_task_name, suite_task_names, sweep_suites,
                           task_files)

COMMANDS = ("list", "plan", "cache", "report", "check")
PSEUDO_KEYS = ("suite",)  # top-level keys evalkit turns into others before Hydra sees them

HELP = """usage: evalkit task=<name> [model=<name>] [key=value ...]     run one task (python -m evalkit works the same)
       evalkit -m task=<a>,<b> [key=value ...]                  a sweep: one run per task (or suite=<name>)
       evalkit list | plan | cache | report | check ...          the other commands

Evaluates a text embedder on an MTEB task with the e5 paper's protocol and writes mteb's result layout:
results_dir/<org__model>/<revision>/<Task>.json, plus evalkit's run record beside it.

commands:
  list [benchmarks]             the tasks, models and suites [every mteb benchmark suite= takes]
  plan suite=<name> [model=...] [data_root=...] [tokens_per_s=...]   texts, tokens left to encode, device-hours
                                (the rate: tokens_per_s=, else measured from run records under results_dir=
                                of this model on this device or device=<name>, else a stated default)
  cache info|clear              the embedding cache
  report RESULTS_DIR ... [--compare MODEL] [--out report/]   tables and plots against published numbers
  check suite=<name> [--update-baseline]                     the embedding-quality regression gate
  (evalkit <command> --help says more)

main keys (key=value; unknown keys fail; --cfg job prints the whole config; every command answers --help):
  task=<name>                   a task of `evalkit list` (case-insensitive; mteb names and BEIR aliases work),
                                or any other mteb task by its mteb name (its instruction from mteb, warned)
  model=<name>                  {models} (default e5_mistral_7b)
  suite=<name>                  a sweep over a suite's tasks: {suites}
  data_dir=<folder>             a local folder for this task: BEIR for retrieval (corpus.jsonl, queries.jsonl,
                                qrels/), the task's dataset for other types (<split>.jsonl, <subset>/<split>.jsonl)
  data_root=<folder>            a folder of BEIR folders named like the BEIR short names (sweeps)
  results_dir=results           where results go;  overwrite=true  re-runs a finished task
  strict_instructions=true      an instruction from mteb's prompts (no task file, no task.instruction) fails
  model.<key>=<value>           {model_keys}
  task.<key>=<value>            {task_keys}
  encode.<key>=<value>          {encode_keys}

your own models, tasks and suites:
  --config-dir DIR (repeatable) or {env}=DIR[{sep}DIR]: folders searched before evalkit's own
  conf/, each laid out like it: model/<name>.yaml, tasks/<name>.yaml, check/<suite>.yaml, suites.yaml

examples:
  evalkit task=scifact model=minilm data_dir=../shared/data/beir/scifact
  evalkit -m task=scifact,nfcorpus model=minilm data_root=../shared/data/beir
  evalkit task=scifact model.max_length=4096 encode.batch_size=8
  evalkit --config-dir myconf task=scifact model=my_model data_dir=../shared/data/beir/scifact
  evalkit plan suite=beir tokens_per_s=30000
  evalkit report results/ --out report/

environment: HF_HUB_OFFLINE=1 (use only the local Hugging Face cache), EVALKIT_CACHE (default ~/.cache/evalkit),
{env}, EVALKIT_DEBUG=1 (an error shows its traceback and the chain of causes
behind its one line: paste it into a bug report). Hydra's own flags (--cfg job, --info, ...; --hydra-help
lists them) go anywhere on the line.
"""


LIST_HELP = """usage: evalkit list

The tasks (name, aliases, and the split, subset or metric a task file sets where evalkit differs from mteb's
main one; everything else comes from mteb's task metadata), the models, the sweep suites (suite=) and the gate
suites (check suite=), from evalkit's conf/ and the user's config folders (--config-dir, EVALKIT_CONFIG_PATH).
"""


def fail(message: str | BaseException) -> None:
    """One line on stderr (with the traceback and its causes first under EVALKIT_DEBUG=1), exit code 2."""
    print_error("evalkit", message)
    sys.exit(2)


INTERRUPTED = 130  # the shell's status for a process ended by SIGINT


def interrupted() -> None:
    """Ctrl-C: one line, no traceback. Results are written whole at the end of a run (a temporary file renamed),
    so the task that was running has no result file, and the finished ones stay."""
    print("evalkit: interrupted; the task that was running wrote no result (finished ones stay)", file=sys.stderr)
    sys.exit(INTERRUPTED)


def print_help() -> None:
    import dataclasses

    keys = lambda schema: ", ".join(f.name for f in dataclasses.fields(schema))  # noqa: E731
    print(HELP.format(models=", ".join(model_names()), suites=", ".join(sweep_suites()), env=CONFIG_PATH_ENV,
                      sep=os.pathsep, model_keys=keys(ModelConfig), task_keys=keys(TaskSpec), encode_keys=keys(EncodeConfig)))


def canonical_overrides(argv: list[str]) -> list[str]:
    """Check keys against the schema, resolve task names (case, mteb names, BEIR aliases) and check model names
    before Hydra sees them; add the config folders as Hydra's search path."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        bare = key.lstrip("+~")
        if eq and "/" not in bare and not bare.startswith("-") and bare.split(".")[0] != "hydra":
            check_override_key(bare, PSEUDO_KEYS)
        if bare == "hydra.searchpath":
            raise EvalkitError(f"set the config folders with --config-dir or {CONFIG_PATH_ENV}, not hydra.searchpath")
        if eq and key == "suite":  # a sweep over the suite's tasks, those sharing texts one after the other
            from evalkit.plan import suite_run_order

            key, value = "task", ",".join(suite_run_order(suite_task_names(value)))
            if not {"-m", "--multirun"} & set(argv):
                out.insert(0, "--multirun")
        elif eq and key == "task":
            value = ",".join(resolve_task_name(v.strip()) for v in value.split(","))
        elif eq and key == "model":
            value = ",".join(model_choice(name.strip(), argv) for name in value.split(","))
        out.append(f"{key}={value}" if eq else arg)
    return hydra_flags_first([*out, searchpath_override()])


def check_data_folders(argv: list[str]) -> None:
    """data_dir= and data_root= that do not exist fail before torch and mteb load (a sweep's comma list: each
    part); the readers check again what they read."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") not in ("data_dir", "data_root") or value in ("null", "") or "${" in value:
            continue
        if Path(value).expanduser().is_dir():
            continue
        for part in value.split(","):
            if not Path(part.strip()).expanduser().is_dir():
                raise EvalkitError(f"{key.lstrip('+')} does not exist or is not a folder: {part.strip()}")


HYDRA_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--experimental-rerun"}  # Hydra's flags that take the next word as their value
HYDRA_INFO = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")  # --info's optional value


def hydra_flags_first(argv: list[str]) -> list[str]:
    """Hydra's flags (with their values) before the overrides: Hydra's parser takes the overrides as one
    positional list, so `--cfg job` after them would leave the rest unrecognized."""
    flags, overrides, args = [], [], iter(argv)
    for arg in args:
        if not arg.startswith("-"):
            overrides.append(arg)
            continue
        flags.append(arg)
        if arg in HYDRA_VALUE_FLAGS or arg in ("--info", "-i"):
            value = next(args, None)
            if value is None:
                continue
            if arg in HYDRA_VALUE_FLAGS or value in HYDRA_INFO:
                flags.append(value)
            else:
                overrides.append(value)
    return [*flags, *overrides]


def model_choice(name: str, argv: list[str]) -> str:
    """The model config a `model=` value names: a config file; the config whose `name` is that hub id; else a
    sentence-transformers folder or hub id, read now and registered as a config of its own (`encoding.sources`)."""
    if name in model_names():
        return name
    looks_like_source = "/" in name or os.path.isdir(name)
    if not looks_like_source:
        raise EvalkitError(f"unknown model {name!r}{suggest(name, model_names())} (or a sentence-transformers "
                           f"folder or hub id: model=<path> / model=<org>/<name>)")
    from evalkit.encoding.sources import evalkit_config_named, folder_model

    named = evalkit_config_named(name)
    if named is not None:
        return named
    given = dict(arg.partition("=")[::2] for arg in argv if arg.startswith(("model.revision=", "model.trust_remote")))
    trust = given.get("model.trust_remote_code", "false").strip().lower() in ("true", "1", "yes")
    cfg, _ = folder_model(name, given.get("model.revision") or None, trust)
    import hashlib

    from hydra.core.config_store import ConfigStore

    node = "folder-" + hashlib.sha256(f"{name}|{cfg.revision}|{trust}".encode()).hexdigest()[:10]
    ConfigStore.instance().store(group="model", name=node, node=cfg)
    return node


def register_configs(argv: list[str] = ()) -> None:
    """The primary config and its schema (`register_primary_config`), and one `task` group entry per task
    named in `argv` (canonical overrides): its task file completed from mteb's metadata, else built from
    mteb's metadata."""
    from hydra.core.config_store import ConfigStore

    register_primary_config()
    store = ConfigStore.instance()
    for arg in argv:
        key, _, value = arg.partition("=")
        for name in value.split(",") if key == "task" else ():
            store.store(group="task", name=name, node=get_task_spec(name))


def print_list() -> None:
    """Names, aliases and what a task file sets itself; type, split and metric of the rest are mteb's (not
    imported here, so the list is fast)."""
    from evalkit.check.suite import suite_names

    specs = task_files()
    print(f"{'task':<40} {'aliases':<24} set by the task file (the rest: mteb's metadata)")
    for name, spec in specs.items():
        own = ", ".join(f"{key}={getattr(spec, key)}" for key in FROM_MTEB if key in file_keys(name))
        print(f"{name:<40} {','.join(spec.aliases):<24} {own}".rstrip())
    print(f"\n{len(specs)} tasks. models: {', '.join(model_names())}")
    print("any other mteb task runs by its mteb name: task=<MtebTask> (its instruction from mteb, warned)")
    print(f"sweep suites (suite=): {', '.join(sweep_suites())}. gate suites (check suite=): {', '.join(suite_names())}")
    print("any mteb benchmark by its name or short alias: suite=\"MTEB(eng, v2)\"; `evalkit list benchmarks` lists them")
    if len(config_dirs()) > 1:
        print(f"config folders: {', '.join(map(str, config_dirs()))}")


def summary_line(summary) -> str:
    """The scores, and what the time was spent on: texts encoded by the model, texts repeated within the run
    (encoded once) and texts read from the cache."""
    others = "".join(f", {k} = {v:.5f}" for k, v in summary.scores.items())
    cached, repeated = summary.cache_hits, summary.repeated
    encoded = summary.texts - cached - repeated
    work = (f"all {summary.texts:,} texts from the embedding cache" if cached == summary.texts and cached else
            f"{encoded:,} texts encoded" + (f", {repeated:,} repeated texts encoded once" if repeated else "")
            + f", {cached:,} from the embedding cache")
    return (f"{summary.mteb_task}: {summary.metric} = {summary.score:.5f}{others} "
            f"({work}; {summary.wall_time_s:.1f} s) -> {summary.path}")


def hydra_job(cfg) -> None:
    from evalkit.runner import run

    try:
        summary = run(to_run_config(cfg))
    except EvalkitError as exc:
        fail(exc)
    except KeyboardInterrupt:
        interrupted()
    if not summary.main_rank:
        return
    if summary.skipped:
        print(f"{summary.mteb_task}: already done, skipped ({summary.path}; overwrite=true to redo)")
    else:
        print(summary_line(summary))


@contextmanager
def hydra_argv(argv: list[str]):
    """Hydra reads its overrides from sys.argv: hand it `argv` for the duration of the call only."""
    saved = sys.argv
    sys.argv = [saved[0], *argv]
    try:
        yield
    finally:
        sys.argv = saved


def take_config_dirs(argv: list[str]) -> list[str]:
    """Remove `--config-dir DIR` / `--config-dir=DIR` (any position, repeatable) and apply them; the rest."""
    rest, folders, args = [], [], iter(argv)
    for arg in args:
        if arg == "--config-dir":
            folders.append(next(args, None) or fail("--config-dir needs a folder"))
        elif arg.startswith("--config-dir="):
            folders.append(arg.partition("=")[2])
        else:
            rest.append(arg)
    add_config_dirs(folders)
    return rest


def run_command(argv: list[str]) -> int | None:
    """`list`, `plan`, `cache`, `report`, `check`: their exit status; None for a run."""
    from evalkit.versions import require_for

    command, rest = argv[0], argv[1:]
    if command == "list" and rest == ["benchmarks"]:  # every mteb benchmark (imports mteb)
        from evalkit.benchmarks import print_benchmarks
        from evalkit.tasks import sweep_suites

        print_benchmarks(sweep_suites())
        return 0
    if command == "list":
        if rest and {"-h", "--help"} & set(rest):
            print(LIST_HELP)
        elif rest:
            raise EvalkitError(f"list takes no arguments, got {' '.join(rest)} (`evalkit list --help`)")
        else:
            print_list()
        return 0
    require_for(command)
    if command == "cache":
        from evalkit.encoding.cache_cli import main as cache_main

        return cache_main(rest)
    if command == "plan":
        from evalkit.plan import main as plan

        plan(rest)
        return 0
    if command == "report":
        from evalkit.report.__main__ import main as report

        return report(rest)
    from evalkit.check.__main__ import main as check

    return check(rest)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = take_config_dirs(argv)
        if argv and argv[0] in COMMANDS:
            sys.exit(run_command(argv))
        if not argv or argv[0] == "help" or {"--help", "-h"} & set(argv):
            print_help()
            return
        argv = canonical_overrides(argv)
        check_data_folders(argv)
        from evalkit.versions import require_for

        require_for("run")
        check_config_files()  # a broken model/*.yaml is one line naming file:line, not Hydra's traceback
        register_configs(argv)
    except EvalkitError as exc:
        fail(exc)
    except KeyboardInterrupt:
        interrupted()
    import hydra

    try:
        with hydra_argv(argv):
            hydra.main(version_base="1.3", config_path=None, config_name="config")(hydra_job)()
    except KeyboardInterrupt:  # outside a job (composing the config, a sweep between jobs)
        interrupted()


if __name__ == "__main__":
    main()
