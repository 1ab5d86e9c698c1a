"""Where the instruction goes: the protocol's one rule, as a pure function (no model needed).

A retrieval query always gets the instruction, a retrieval document only when the task is symmetric;
for the task types the model config lists in `prompt.instruct_documents_for`, every input gets it.
`Encoder.render` applies this to what mteb hands it; `evalkit plan` counts tokens through the same function.
"""

from __future__ import annotations

from evalkit.config import PromptConfig, TaskSpec


def instructed(prompt: PromptConfig | None, spec: TaskSpec, task_type: str, side: str) -> bool:
    """Whether inputs of this side of this task get the instruction."""
    if prompt is None:
        return False
    return side == "query" or spec.symmetric or task_type in prompt.instruct_documents_for


def render(texts: list[str], prompt: PromptConfig | None, spec: TaskSpec, task_type: str, side: str) -> list[str]:
    """The texts as the model reads them: with the template around them where `instructed` says so."""
    if not instructed(prompt, spec, task_type, side):
        return texts
    return [prompt.template.format(instruction=spec.instruction, text=text) for text in texts]
