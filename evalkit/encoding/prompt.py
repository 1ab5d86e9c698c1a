"""Where the instruction goes: the protocol's one rule, as a pure function (no model needed), and which
instruction each task gets (`TaskPrompts`).

A retrieval query always gets the instruction, a retrieval document only when the task is symmetric;
for the task types the model config lists in `prompt.instruct_documents_for`, every input gets it.
`Encoder.render` applies this to what mteb hands it; `evalkit plan` counts tokens through the same function.
"""

from __future__ import annotations

import string
from typing import Mapping

from evalkit import EvalkitError
from evalkit.config import PromptConfig, TaskSpec

PLACEHOLDERS = ("instruction", "text")  # what render fills in a template


def instructed(prompt: PromptConfig | None, spec: TaskSpec, task_type: str, side: str) -> bool:
    """Whether inputs of this side of this task get the instruction."""
    if prompt is None:
        return False
    return side == "query" or spec.symmetric or task_type in prompt.instruct_documents_for


def check_template(template: str, where: str = "model.prompt.template") -> None:
    """A prompt template names `{instruction}` and `{text}` and nothing else (a typo would fail after the model
    loads, or drop the text)."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise EvalkitError(f"{where}: not a valid template ({exc}): {template!r}") from exc
    unknown = [name for name in fields if name not in PLACEHOLDERS]
    if unknown:
        raise EvalkitError(f"{where}: unknown placeholder {{{unknown[0]}}} in {template!r} (a template has "
                           f"{{instruction}} and {{text}})")
    if "text" not in fields:
        raise EvalkitError(f"{where}: no {{text}} placeholder in {template!r}: the input would be dropped")


def render(texts: list[str], prompt: PromptConfig | None, spec: TaskSpec, task_type: str, side: str) -> list[str]:
    """The texts as the model reads them: with the template around them where `instructed` says so."""
    if not instructed(prompt, spec, task_type, side):
        return texts
    return [prompt.template.format(instruction=spec.instruction, text=text) for text in texts]


class TaskPrompts:
    """The spec (instruction, symmetric) of each mteb task an encoder meets: from `specs` (mteb task name ->
    spec), else resolved once by `evalkit.instructions`, as a run would; `sources` says where each came from."""

    def __init__(self, specs: Mapping[str, TaskSpec], strict: bool = False) -> None:
        self.given = dict(specs)  # as passed in (a fresh encoder starts from these)
        self.specs = dict(specs)
        self.strict = strict
        self.sources: dict[str, str] = {}  # tasks whose instruction was resolved here, and from where

    def spec(self, mteb_task: str, task_metadata=None) -> TaskSpec:
        spec = self.specs.get(mteb_task)
        if spec is None or spec.instruction is None:
            from evalkit.instructions import resolve_instruction
            from evalkit.tasks import spec_for_metadata

            if spec is None:
                task_metadata = task_metadata or mteb_metadata(mteb_task)
                spec = spec_for_metadata(task_metadata)
            spec, self.sources[mteb_task] = resolve_instruction(spec, self.strict, task_metadata)
            self.specs[mteb_task] = spec
        return spec


def mteb_metadata(mteb_task: str):
    """mteb's metadata of a task by name (one line when mteb knows no such task)."""
    import mteb

    try:
        return mteb.get_task(mteb_task).metadata
    except KeyError as exc:
        raise EvalkitError(f"no instruction for mteb task {mteb_task!r}: mteb knows no such task; pass "
                           f"instructions= or add conf/tasks/{mteb_task}.yaml") from exc
