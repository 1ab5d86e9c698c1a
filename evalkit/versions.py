"""Dependency floors, checked when a command starts: one line naming the package to upgrade, never a deep
traceback (transformers before 4.56 takes no `dtype=` and stops with a TypeError inside the model's constructor),
and never a run on a release whose numbers were not checked.

FLOORS is the single list; pyproject.toml's dependencies carry the same floors (a test keeps them equal),
each with the feature that needs it.
"""

from __future__ import annotations

import re
from importlib import metadata

from evalkit import EvalkitError

# distribution -> (lowest release, what needs it)
FLOORS = {
    "torch": ("2.5", "scaled_dot_product_attention(enable_gqa=) and flex attention in packed batches"),
    "transformers": ("4.56", "from_pretrained(dtype=); older releases stop deep inside with a TypeError"),
    "mteb": ("2.20", "the oldest release evalkit's tests and published-score reproductions were run with"),
    "hydra-core": ("1.3", "version_base='1.3'"),
    "omegaconf": ("2.2", "hydra-core 1.3's own floor: structured configs with Enum choices"),
    "huggingface-hub": ("0.34", "the hub client transformers 4.56 needs"),
    "datasets": ("2.19", "the Dataset API mteb 2 uses"),
    "pandas": ("1.5", "DataFrame.to_csv(lineterminator=)"),
}

COMMAND_NEEDS = {
    "run": ("torch", "transformers", "mteb", "hydra-core", "omegaconf", "huggingface-hub", "datasets"),
    "check": ("torch", "transformers", "mteb", "omegaconf", "huggingface-hub", "datasets"),
    "plan": ("torch", "transformers", "mteb", "datasets"),
    "cache": ("torch",),
    "report": ("mteb", "pandas"),
}


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def release(version: str) -> tuple[int, ...]:
    """The release numbers of a version string: '2.13.0+cpu' -> (2, 13, 0), '5.0.0rc1' -> (5, 0, 0)."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def require(*distributions: str) -> None:
    """Raise EvalkitError naming the first distribution that is missing or older than its floor."""
    for name in distributions:
        floor, needed_for = FLOORS[name]
        have = installed_version(name)
        if have is None:
            raise EvalkitError(f"{name} is not installed; evalkit needs {name}>={floor}: pip install '{name}>={floor}'")
        if release(have) < release(floor):
            raise EvalkitError(f"{name} {have} is too old; evalkit needs {name}>={floor} ({needed_for}): "
                               f"pip install -U '{name}>={floor}'")


def require_for(command: str) -> None:
    require(*COMMAND_NEEDS[command])
