"""Experiment identity: everything that changes a result's number, and the results folder it names.

A result is identified by the weights (`weights_fingerprint`: content hash of a local folder, hub commit, or the
random-init config), the revision, every protocol setting as it acts on this task (pooling, max length, dtype,
normalization, padding side, prompt template, the instruction actually used and which inputs get it, evalkit's
token-id scheme), the task, split, subsets evaluated and headline metric, and the data (a content fingerprint
of a local folder, or the hub datasets mteb pins). The runner stores the identity in the run record and skips
a re-run only when the stored identity equals the current one. Not in it: batch sizes, packing, the attention
kernel and the device, which move only the last bits of a float (the gate's tolerances), and the versions of
mteb and evalkit, which the run record keeps.

Folder: the settings of the model config and the task file evalkit ships (for the model's name and the mteb
task, whatever a user's file is called) on the published test set (hub data, or a local
folder whose fingerprint is a published test set's, `published_test_sets`) write to `<revision>/`, mteb's
layout. Anything else gets `<revision>__<setting>-<value>__...__<hash8>`: one readable part per setting that
differs from the defaults, plus a hash of the model-level identity and those differences, so a sweep over
tasks with one ablation shares one folder and two different ablations never share one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from importlib.resources import files
from typing import Any

from evalkit import EvalkitError
from evalkit.conf_path import config_dirs
from evalkit.config import ModelConfig, RunConfig, TaskSpec, hub_offline
from evalkit.errors import first_line

TEST_SETS = files("evalkit") / "report" / "reference" / "test_sets.tsv"  # package data (read, not imported)
VERSION = 2  # bump when the identity's fields change meaning


@dataclass(frozen=True)
class Data:
    """Where a task's data came from: `identity` is what counts, `name` the local folder's (for the folder)."""

    identity: dict[str, Any]
    name: str | None = None


def local_data(folder_name: str, fingerprint: str) -> Data:
    return Data({"source": "local", "fingerprint": fingerprint}, folder_name)


def hub_data(task) -> Data:
    """The hub datasets (path@revision) mteb pins for a task, an aggregate's parts included."""
    parts = getattr(task.metadata, "tasks", None) or getattr(task, "tasks", None) or [task]
    return Data({"source": "hub", "datasets": [f"{p.metadata.dataset['path']}@{p.metadata.dataset.get('revision')}"
                                               for p in parts]})


@lru_cache(maxsize=1)
def published_test_sets() -> dict[tuple[str, str, str], set[str]]:
    """(mteb task, split, subset) -> data fingerprints of the published test set (reference/test_sets.tsv)."""
    out: dict[tuple[str, str, str], set[str]] = {}
    with TEST_SETS.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            out.setdefault((row["mteb_task"], row["split"], row["hf_subset"]), set()).add(row["fingerprint"])
    return out


def is_published(data: dict[str, Any], mteb_task: str, split: str, subset: str) -> bool:
    """Whether a data identity is the published test set: hub data as mteb pins it, or a local folder with a
    published test set's fingerprint."""
    if data.get("source") == "hub":
        return True
    return data.get("fingerprint") in published_test_sets().get((mteb_task, split, subset), set())


@dataclass(frozen=True)
class Experiment:
    identity: dict[str, Any]  # compared on every re-run; stored in the run record
    differs: dict[str, str] = field(default_factory=dict)  # readable settings that differ from the defaults
    folder: str = ""  # the revision folder under <results_dir>/<org__model>/
    published_data: bool = True


def experiment(cfg: RunConfig, data: Data) -> Experiment:
    """The identity of running `cfg` on `data`, and its folder (before any model is loaded)."""
    from evalkit.encoding.cache import ID_SCHEME
    from evalkit.encoding.model import pick_device
    from evalkit.encoding.pipeline import normalizes
    from evalkit.encoding.prompt import instructed, resolve_prompt
    from evalkit.encoding.st_folder import protocol_extras

    model, spec = cfg.model, cfg.task
    prompt = model.prompt
    identity = {
        "version": VERSION,
        "model": {"name": model.name, "revision": model.revision,
                  "weights": weights(model, pick_device(model.device).type),
                  "trust_remote_code": model.trust_remote_code},
        "protocol": {
            "pooling": str(model.pooling), "max_length": model.max_length, "dtype": str(model.dtype),
            "normalized": normalizes(model, spec.type),
            "padding_side": str(model.padding_side), "token_ids": ID_SCHEME,
            "template": prompt.template if prompt else None,
            "instruction": spec.instruction if prompt else None,
            "instructed": {side: instructed(prompt, spec, spec.type, side) for side in ("query", "document")},
            **protocol_extras(model),
        },
        "task": {"mteb_task": spec.mteb_task, "type": str(spec.type), "split": spec.split,
                 "hf_subset": spec.hf_subset, "hf_subsets": spec.hf_subsets, "metric": spec.metric},
        "data": data.identity,
    }
    if model.prompts is not None:  # each side's prefix, as resolve_prompt gives it (None: mteb gives no side)
        identity["protocol"]["prompts"] = {str(side): resolve_prompt(model, spec, str(spec.type), side).prefix
                                           for side in ("query", "document", None)}
    if model.similarity != "cosine":
        identity["protocol"]["similarity"] = str(model.similarity)
    if model.from_folder:
        identity["protocol"]["from_folder"] = True
    identity = json.loads(json.dumps(identity))  # as the run record stores it, so a re-run compares like with like
    published = is_published(data.identity, spec.mteb_task, spec.split, spec.hf_subset)
    differs = model_differences(model, identity["model"]["weights"]) | task_differences(spec, model)
    if not published:
        differs["data"] = f"{(data.name or 'local')[:24]}-{str(data.identity.get('fingerprint')).split(':')[-1][:8]}"
    revision = model.revision or "no_revision_available"
    folder = revision
    if differs:
        level = {"model": identity["model"], "settings": _model_settings(model), "differs": differs}
        parts = [_part(key, value) for key, value in differs.items()]
        folder = "__".join([revision, *parts])[:180] + "__" + _short(json.dumps(level, sort_keys=True, default=_plain), 8)
    return Experiment(identity, differs, folder, published)


def weights(model: ModelConfig, device_type: str) -> str:
    """`weights_fingerprint`, with a missing local folder named as load_model names it. Online, a hub model not
    downloaded yet is pinned to the commit the hub says its revision names (the download follows)."""
    from evalkit.encoding.weights_fingerprint import weights_fingerprint
    from evalkit.encoding.model import is_local, resolve_path

    source = resolve_path(model.name_or_path)
    if model.random_init is None and is_local(source) and not os.path.isdir(source):
        raise EvalkitError(f"model path does not exist: {source}")
    try:
        return weights_fingerprint(model, device_type)
    except EvalkitError:
        if model.random_init is not None or is_local(source) or hub_offline():
            raise
    from huggingface_hub import HfApi

    try:
        commit = HfApi().model_info(source, revision=model.revision).sha
    except Exception as exc:  # network and hub errors come in many kinds; the user needs one line
        raise EvalkitError(f"cannot find {source}@{model.revision or 'main'} on the hub: "
                           f"{first_line(exc)}") from exc
    return weights_fingerprint(replace(model, revision=commit), device_type)


def model_files() -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every model config file in the config folders: what `_model_defaults` reads, as its
    cache key, so another folder list ($EVALKIT_CONFIG_PATH) or an edited file is read again."""
    found = []
    for folder in config_dirs():
        for path in sorted((folder / "model").glob("*.yaml")):
            stat = path.stat()
            found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


@lru_cache(maxsize=4)
def _model_defaults(key: tuple[tuple[str, int, int], ...]) -> dict[str, ModelConfig]:
    """Model name -> the settings of the config file evalkit ships for it, else of the first user file that
    names it (`key`: see `model_files`). A user's file that shadows one of
    evalkit's is measured against evalkit's: it never passes for the published protocol."""
    from evalkit.config import load_model_config, model_names, packaged_model_config

    out: dict[str, ModelConfig] = {}
    for cfg in filter(None, map(packaged_model_config, model_names())):
        out.setdefault(cfg.name, cfg)
    for name in model_names():
        cfg = load_model_config(name)
        out.setdefault(cfg.name, cfg)
    return out


def _model_settings(model: ModelConfig) -> dict[str, Any]:
    """The protocol settings a model config fixes for every task (for the folder hash; the weights fingerprint
    stands for name_or_path, tokenizer and random_init)."""
    settings = {key: getattr(model, key) for key in ("pooling", "max_length", "dtype", "normalize", "unnormalized_types",
                                                      "padding_side", "trust_remote_code", "prompt")}
    from evalkit.encoding.st_folder import protocol_extras

    extras = protocol_extras(model)  # only where they differ from the defaults: other models' folders unchanged
    if model.prompts is not None:
        extras["prompts"] = model.prompts
    return {**settings, **extras}


def model_differences(model: ModelConfig, weights_fingerprint: str) -> dict[str, str]:
    """Readable settings of `model` that differ from its config file's (a folder model: from what its folder
    says); all of them when no file names it."""
    if model.from_folder:
        from evalkit.encoding.sources import folder_model

        default = replace(folder_model(model.name_or_path, model.revision, model.trust_remote_code)[0],
                          name=model.name, device=model.device, attn_implementation=model.attn_implementation)
    else:
        default = _model_defaults(model_files()).get(model.name)
    if default is None:
        return {"weights": _given(model.name_or_path)}  # a model given by overrides: named after its weights
    out = {}
    if (model.name_or_path, model.tokenizer, model.random_init) != (
            default.name_or_path, default.tokenizer, default.random_init):
        out["weights"] = _short(weights_fingerprint, 8)
    for key in ("pooling", "max_length", "dtype", "normalize", "padding_side", "trust_remote_code", "include_prompt",
                "lower_case", "similarity", "encode_with", "default_prompt_name", "from_folder"):
        if getattr(model, key) != getattr(default, key):
            out[key] = str(getattr(model, key)).lower()
    if list(model.dense) != list(default.dense):
        out["dense"] = "+".join(model.dense) or "none"
    if model.prompts != default.prompts:
        out["prompts"] = "none" if model.prompts is None else _short(json.dumps(model.prompts, sort_keys=True))
    if sorted(model.unnormalized_types) != sorted(default.unnormalized_types):
        out["unnormalized_types"] = "+".join(sorted(map(str, model.unnormalized_types))) or "none"
    if (model.prompt is None) != (default.prompt is None):
        out["prompt"] = "none" if model.prompt is None else _short(json.dumps(asdict(model.prompt), default=str))
    elif model.prompt is not None:
        if model.prompt.template != default.prompt.template:
            out["template"] = _short(model.prompt.template)
        if sorted(model.prompt.instruct_documents_for) != sorted(default.prompt.instruct_documents_for):
            out["instruct_documents_for"] = "+".join(sorted(map(str, model.prompt.instruct_documents_for))) or "none"
    return out


def task_differences(spec: TaskSpec, model: ModelConfig) -> dict[str, str]:
    """Readable settings of the task that differ from evalkit's default for its mteb task, whatever the task
    file is called: the task file evalkit ships for it, else mteb's metadata and prompts (the instruction only
    where used)."""
    from evalkit.instructions import default_spec

    default = default_spec(spec)
    if default is None:
        return {}
    out = {}
    if model.prompt is not None and spec.instruction != default.instruction:
        out["instruction"] = _short(spec.instruction)
    if model.prompt is not None and spec.symmetric != default.symmetric:
        out["symmetric"] = str(spec.symmetric).lower()
    if spec.split != default.split:
        out["split"] = spec.split
    if spec.hf_subset != default.hf_subset:
        out["subset"] = spec.hf_subset
    if spec.metric != default.metric:  # another headline score: never shown as the task's published one
        out["metric"] = spec.metric
    return out


def describe(differs: dict[str, str]) -> str:
    """`max_length=64, pooling=cls`: the differences as a person reads them (report labels)."""
    return ", ".join(f"{key}={value}" for key, value in differs.items())


def first_difference(stored: Any, current: Any, where: str = "") -> str:
    """`protocol.max_length: 256 -> 64`: the first place two identities differ."""
    if isinstance(stored, dict) and isinstance(current, dict):
        for key in sorted(set(stored) | set(current)):
            if stored.get(key) != current.get(key):
                return first_difference(stored.get(key), current.get(key), f"{where}.{key}" if where else key)
    return f"{where}: {json.dumps(stored, default=str)[:60]} -> {json.dumps(current, default=str)[:60]}"


def _plain(value: Any) -> Any:
    return asdict(value) if hasattr(value, "__dataclass_fields__") else str(value)


def _short(text: str, n: int = 6) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _given(name_or_path: str) -> str:
    """The name of the weights a model was given: a folder's or a hub model's last part (`/ckpt/step-1000/` ->
    `step-1000`)."""
    return re.split(r"[/\\]", name_or_path.rstrip("/\\"))[-1] or name_or_path


def _part(key: str, value: str) -> str:
    """`key-value`, safe as a file name: anything but letters, digits, `.`, `_`, `+` and `-` becomes `-`."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", f"{key}-{value}")[:60]
