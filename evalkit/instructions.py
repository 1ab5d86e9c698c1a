"""Which instruction a task gets, and where it came from: one function for the CLI, the runner and the Encoder.

In order: an explicit `task.instruction`; `conf/tasks/<Task>.yaml` (the paper's, exact); mteb's task
metadata prompt; mteb's default prompt for the task type. The last two are not the paper's protocol: each
logs a one-line warning, and `strict_instructions` (the regression gate) makes them an error.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from evalkit import EvalkitError
from evalkit.config import TaskSpec

log = logging.getLogger(__name__)

EXPLICIT = "task.instruction"
MTEB_PROMPT = "mteb task metadata prompt"


def task_file_source(spec: TaskSpec) -> str:
    return f"conf/tasks/{spec.name}.yaml"


def mteb_instruction(meta) -> tuple[str, str]:
    """(instruction, source) from mteb: the task's metadata prompt (a dict's query prompt), else the
    default prompt of its task type."""
    prompt = meta.prompt.get("query") if isinstance(meta.prompt, dict) else meta.prompt
    if prompt and prompt.strip():
        return prompt, MTEB_PROMPT
    from evalkit.mteb_hooks import default_prompt

    default = default_prompt(meta.name)
    if not default:
        raise EvalkitError(f"no instruction for {meta.name}: no task file, and mteb has no prompt for it; "
                           f"pass task.instruction=...")
    return default, f"mteb default prompt for {meta.type}"


def default_spec(spec: TaskSpec) -> TaskSpec | None:
    """The spec of `spec`'s mteb task when nothing is changed, whatever task file `spec` came from: the task
    file evalkit ships for that mteb task (a user's file, under its name or another, is measured against it),
    else the one built from mteb's metadata with mteb's instruction (no warning: nothing is run); None for a
    task mteb does not know."""
    from evalkit.tasks import packaged_task_specs, spec_from_mteb

    shipped = {s.mteb_task: s for s in sorted(packaged_task_specs().values(), key=lambda s: s.name == s.mteb_task)}
    if spec.mteb_task in shipped:
        return shipped[spec.mteb_task]
    import mteb

    try:
        meta = mteb.get_task(spec.mteb_task).metadata
        return replace(spec_from_mteb(meta), instruction=mteb_instruction(meta)[0])
    except (KeyError, EvalkitError):
        return None


def resolve_instruction(spec: TaskSpec, strict: bool = False, meta=None) -> tuple[TaskSpec, str]:
    """`spec` with its instruction filled in, and the instruction's source. `meta` (mteb's TaskMetadata)
    is looked up by name when not given; call this once, on the spec as configured."""
    from evalkit.tasks import load_task_specs, specs_by_mteb_name

    registered = specs_by_mteb_name().get(spec.mteb_task)
    if spec.instruction is not None:  # the spec's own task file (under any name), else its mteb task's, else given
        for file_spec in (load_task_specs().get(spec.name), registered):
            if file_spec is not None and spec.instruction == file_spec.instruction:
                return spec, task_file_source(file_spec)
        return spec, EXPLICIT
    if registered is not None:
        return replace(spec, instruction=registered.instruction), task_file_source(registered)
    if meta is None:
        import mteb

        meta = mteb.get_task(spec.mteb_task).metadata
    instruction, source = mteb_instruction(meta)
    if strict:
        raise EvalkitError(f"{spec.mteb_task}: no instruction in task.instruction or conf/tasks/, and "
                           f"strict_instructions=true refuses the {source} ({instruction!r}); "
                           f"pass task.instruction=... or add conf/tasks/{spec.mteb_task}.yaml")
    log.warning("%s: no task file gives its instruction; using the %s %r (not the paper's; "
                "strict_instructions=true makes this an error)", spec.mteb_task, source, instruction)
    return replace(spec, instruction=instruction), source


def instruction_rows(name: str, model: str = "e5_mistral_7b") -> list[tuple[str, str, str, str]]:
    """(task, instruction source, evalkit's instruction, what mteb's own entry of the model would use) per task
    of a benchmark: evalkit's rule (task file, mteb's task prompt, mteb's type default) against the instruction
    mteb's ModelMeta loader for that model picks (its `get_instruction`, queries), '' where mteb has no entry."""
    from evalkit.benchmarks import benchmark_specs
    from evalkit.config import load_model_config
    from evalkit.mteb_hooks import mteb_instruction_picker
    from evalkit.tasks import get_task_spec

    cfg = load_model_config(model)
    if cfg.prompt is None:
        raise EvalkitError(f"model {model!r} takes no instruction")
    mteb_pick = mteb_instruction_picker(cfg.name)
    rows = []
    for spec in benchmark_specs(name, get_task_spec).values():
        resolved, source = resolve_instruction(spec)
        rows.append((spec.mteb_task, source, resolved.instruction, mteb_pick(spec.mteb_task) if mteb_pick else ""))
    return rows
