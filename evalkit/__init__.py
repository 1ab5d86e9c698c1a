"""evalkit: evaluate instruction-tuned text embedders on MTEB/BEIR with the paper's protocol.

Importing the package is cheap: torch, transformers and mteb load only when an encoder is built
or a task is run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_encoder", "EvalkitError"]


class EvalkitError(Exception):
    """A problem with the user's input; printed as one line, exit code 2."""


def load_encoder(model: str = "e5_mistral_7b", **overrides: Any):
    """Build the mteb-protocol encoder for `conf/model/<model>.yaml`, with keys overridden.

    `instructions` (mteb task name -> TaskSpec) may be passed; by default the task registry in
    `conf/tasks/` supplies the paper's instruction, and any other mteb task gets its instruction as
    `evalkit.instructions` resolves it (mteb's prompts, with a warning; an error with
    `strict_instructions=True`).
    """
    from evalkit.encoding.encoder import load_encoder as _load

    return _load(model, **overrides)
