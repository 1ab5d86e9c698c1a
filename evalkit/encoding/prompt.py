"""Which prompt each input gets, and where it came from: one function (`resolve_prompt`) for every model kind,
both sides and every task type, as a pure function (no model needed); and which instruction each task gets
(`TaskPrompts`).

A model config gives at most one scheme:

  prompt.template   e5-style instruction templates (`Instruct: {instruction}\\nQuery: {text}`): the task's
                    instruction inside the model's template. A retrieval query always gets it, a retrieval
                    document only when the task is symmetric; for the task types in `prompt.instruct_documents_for`
                    every input gets it.
  prompts           a sentence-transformers `prompts` dict, or fixed query/document prefixes
                    (`{query: "query: ", document: "passage: "}`): a prefix looked up in mteb's order (its
                    `get_prompt_name`): `<task name>-<side>`, `<task name>`, `<task type>-<side>`, `<task type>`,
                    `<side>`; keys mteb's wrapper drops (neither a task, a task type nor a side) are not used.
                    When none matches, sentence-transformers' own fallback applies as mteb's wrapper reaches it:
                    a query side through `encode_query` (`query`), a document side through `encode_document`
                    (the first of `document`, `passage`, `corpus`), and inputs mteb gives no side (STS, pair
                    classification, classification, clustering: `side=None`) through `encode`, where
                    `default_prompt_name` applies.
  neither           every text as it is.

`Encoder.render` applies this to what mteb hands it; `evalkit plan` counts tokens through the same function.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

from evalkit import EvalkitError
from evalkit.config import ModelConfig, PromptConfig, TaskSpec

DOCUMENT_FALLBACK = ("document", "passage", "corpus")  # sentence-transformers' encode_document, in its order


@dataclass(frozen=True)
class Resolved:
    """The prompt one side of one task gets: a template around the text, a prefix before it, or nothing."""

    template: str | None = None  # contains {instruction} and {text}
    instruction: str | None = None
    prefix: str | None = None
    source: str = "none"  # where it came from, for the run record

    def apply(self, text: str) -> str:
        if self.template is not None:
            return self.template.format(instruction=self.instruction, text=text)
        return (self.prefix or "") + text

    def record(self) -> dict:
        shown = self.template.replace("{instruction}", self.instruction or "") if self.template else self.prefix
        return {"prompt": shown, "source": self.source}

PLACEHOLDERS = ("instruction", "text")  # what render fills in a template


def instructed(prompt: PromptConfig | None, spec: TaskSpec, task_type: str, side: str) -> bool:
    """Whether inputs of this side of this task get the instruction (template scheme)."""
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


def prompt_key(prompts: dict, task_name: str, task_type: str, side: str | None) -> str | None:
    """The key mteb's wrapper picks from a prompts dict, in its order; None when none is there (`side` None:
    mteb gave no prompt type, so no side key counts)."""
    keys = (f"{task_name}-{side}", task_name, f"{task_type}-{side}", task_type, side) if side else (task_name, task_type)
    return next((key for key in keys if key in prompts), None)


@lru_cache(maxsize=64)
def _dropped_by_mteb(keys: tuple[str, ...]) -> frozenset[str]:
    """The keys mteb's wrapper ignores (neither a task name, a task type nor a side, alone or with -<side>)."""
    import logging
    import warnings

    from mteb.models.abs_encoder import AbsEncoder

    prompts = dict.fromkeys(keys, "")
    logger = logging.getLogger("mteb")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kept, _ = AbsEncoder.validate_task_to_prompt_name(prompts, raise_for_invalid_keys=False)
    finally:
        logger.setLevel(level)
    return frozenset(keys) - set(kept or {})


def usable_prompts(prompts: dict) -> dict:
    """The prompts mteb's wrapper looks up (keys it would drop left out)."""
    dropped = _dropped_by_mteb(tuple(sorted(prompts))) if prompts else frozenset()
    return {k: v for k, v in prompts.items() if k not in dropped}


def resolve_prompt(model: ModelConfig, spec: TaskSpec, task_type: str, side: str | None) -> Resolved:
    """The prompt inputs of `side` of this task get under `model`'s scheme, and its source. `side` is mteb's prompt
    type: query, document, or None where mteb gives none (the template scheme treats None as a query)."""
    if model.prompt is not None:
        if not instructed(model.prompt, spec, task_type, side or "query"):
            return Resolved(source="prompt.template: not for this side")
        return Resolved(template=model.prompt.template, instruction=spec.instruction, source="prompt.template")
    if model.prompts is None:
        return Resolved()
    looked_up = usable_prompts(model.prompts)
    key = prompt_key(looked_up, spec.mteb_task, task_type, side)
    if key is not None and looked_up[key] is not None:
        return Resolved(prefix=looked_up[key], source=f"prompts[{key!r}]")
    # mteb passes no prompt: sentence-transformers' encode_query / encode_document / encode pick their own
    fallback = {"query": ("query",), "document": DOCUMENT_FALLBACK}.get(side, ())
    key = next((k for k in fallback if k in model.prompts), None)
    if key is None and model.default_prompt_name is not None:
        key = model.default_prompt_name
        if key not in model.prompts:
            return Resolved(source=f"default_prompt_name {key!r}: not in prompts")
    if key is None or model.prompts[key] is None:
        return Resolved(source="prompts: none for this task and side" + (f" ({key!r} unset)" if key else ""))
    return Resolved(prefix=model.prompts[key], source=f"prompts[{key!r}]")


def render(texts: list[str], model: ModelConfig, spec: TaskSpec, task_type: str, side: str | None) -> list[str]:
    """The texts as the model reads them: with the prompt `resolve_prompt` gives."""
    resolved = resolve_prompt(model, spec, task_type, side)
    if resolved.template is None and not resolved.prefix:
        return texts
    return [resolved.apply(text) for text in texts]


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
