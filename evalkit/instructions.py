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
    """The spec a task runs with when nothing is overridden: the task file evalkit ships (a user's file of the
    same name is measured against it), else the user's task file, else the one built from mteb's metadata
    with mteb's instruction (no warning: nothing is run); None for a task mteb does not know."""
    from evalkit.tasks import load_task_specs, packaged_task_specs, spec_from_mteb

    registered = packaged_task_specs().get(spec.name) or load_task_specs().get(spec.name)
    if registered is not None:
        return registered
    import mteb

    try:
        meta = mteb.get_task(spec.mteb_task).metadata
        return replace(spec_from_mteb(meta), instruction=mteb_instruction(meta)[0])
    except (KeyError, EvalkitError):
        return None


def resolve_instruction(spec: TaskSpec, strict: bool = False, meta=None) -> tuple[TaskSpec, str]:
    """`spec` with its instruction filled in, and the instruction's source. `meta` (mteb's TaskMetadata)
    is looked up by name when not given; call this once, on the spec as configured."""
    from evalkit.tasks import specs_by_mteb_name

    registered = specs_by_mteb_name().get(spec.mteb_task)
    if spec.instruction is not None:
        same = registered is not None and spec.instruction == registered.instruction
        return spec, task_file_source(registered) if same else EXPLICIT
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
