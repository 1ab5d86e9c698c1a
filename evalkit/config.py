"""Typed config schemas. Unknown keys and wrong types fail with one readable line.

Hydra composes `conf/config.yaml`, a `conf/model/*.yaml` and a task from `tasks/`;
`to_run_config` turns the result into these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evalkit import EvalkitError

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
TASKS_DIR = ROOT / "tasks"

TASK_TYPES = (
    "Classification",
    "Clustering",
    "PairClassification",
    "Reranking",
    "Retrieval",
    "STS",
    "Summarization",
)


@dataclass
class TaskSpec:
    """One benchmark task: which mteb task, which split, and its one-sentence instruction."""

    name: str = MISSING  # CLI name = file stem in tasks/
    mteb_task: str = MISSING
    type: str = MISSING
    split: str = MISSING
    hf_subset: str = "default"
    metric: str = MISSING  # mteb v2 key of the main metric
    instruction: str = MISSING
    symmetric: bool = False  # documents are encoded like queries (QuoraRetrieval)
    aliases: list[str] = field(default_factory=list)


@dataclass
class PromptConfig:
    """Where the instruction goes. The e5 template; which sides get it is data, not code."""

    template: str = "Instruct: {instruction}\nQuery: {text}"
    # task types whose every input (documents too) gets the instruction
    instruct_documents_for: list[str] = field(default_factory=list)


@dataclass
class RandomInit:
    """A randomly initialised architecture (tests, throughput benchmarks)."""

    model_type: str = "mistral"
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str = MISSING  # the model's public id; results go under its name
    name_or_path: str = MISSING  # hub id, local folder, or pkg:<module>/<path> inside an installed package
    revision: Optional[str] = None
    tokenizer: Optional[str] = None  # defaults to name_or_path; a sentencepiece .model file is wrapped
    pooling: str = "last"  # last | mean | cls
    max_length: int = 512  # including BOS and the EOS evalkit appends
    dtype: str = "float32"  # float32 | float16 | bfloat16: the forward pass; pooling and scoring are float32
    device: str = "auto"
    normalize: bool = True
    unnormalized_types: list[str] = field(default_factory=list)  # task types left unnormalized
    padding_side: str = "right"
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False
    prompt: Optional[PromptConfig] = None  # None: the model takes no instruction
    random_init: Optional[RandomInit] = None


@dataclass
class EncodeConfig:
    batch_size: int = 32  # texts per mteb data-loader batch; evalkit's own batches are cut by tokens
    max_tokens_per_batch: Optional[int] = None  # tokens per forward pass; None = from free memory and model size
    packing: str = "auto"  # auto | packed | padded: packed = no padding (llama-family decoders)
    varlen_kernel: str = "auto"  # auto | flash | flex | sdpa: attention inside packed batches
    cache: bool = False  # embedding cache: re-runs and shared corpora skip the model (conf/config.yaml: on)
    cache_dir: Optional[str] = None  # default $EVALKIT_CACHE/embeddings or ~/.cache/evalkit/embeddings
    cache_max_gb: Optional[float] = None  # least recently used shards go beyond this size
    cache_shard_texts: int = 4096  # texts per cache shard: a killed run resumes from the last full shard
    show_progress: bool = True


@dataclass
class RunConfig:
    task: TaskSpec = MISSING
    model: ModelConfig = MISSING
    data_dir: Optional[str] = None  # a local BEIR folder for this task
    data_root: Optional[str] = None  # a folder of BEIR folders named by the tasks' BEIR names (sweeps)
    results_dir: str = "results"
    overwrite: bool = False
    encode: EncodeConfig = field(default_factory=EncodeConfig)


_CHOICES = {
    "pooling": ("last", "mean", "cls"),
    "dtype": ("float32", "float16", "bfloat16"),
    "padding_side": ("left", "right"),
}


def structured(schema: type, data: Any, where: str):
    """Merge `data` onto `schema`; unknown keys, missing values and bad types raise EvalkitError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        raise EvalkitError(f"{where}: {msg}") from None
    return obj


def check_model(model: ModelConfig, where: str = "model config") -> ModelConfig:
    for key, allowed in _CHOICES.items():
        value = getattr(model, key)
        if value not in allowed:
            raise EvalkitError(f"{where}: {key}={value!r} is not one of {', '.join(allowed)}")
    if model.max_length < 2:
        raise EvalkitError(f"{where}: max_length must be at least 2, got {model.max_length}")
    for t in model.unnormalized_types + (model.prompt.instruct_documents_for if model.prompt else []):
        if t not in TASK_TYPES:
            raise EvalkitError(f"{where}: unknown task type {t!r} (known: {', '.join(TASK_TYPES)})")
    return model


def check_task(task: TaskSpec, where: str = "task config") -> TaskSpec:
    if task.type not in TASK_TYPES:
        raise EvalkitError(f"{where}: type={task.type!r} is not one of {', '.join(TASK_TYPES)}")
    if not task.instruction.strip():
        raise EvalkitError(f"{where}: the instruction is empty")
    return task


def load_model_config(name: str, **overrides: Any) -> ModelConfig:
    """`conf/model/<name>.yaml` with keys overridden, validated."""
    path = CONF_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        raise EvalkitError(f"unknown model {name!r}{suggest(name, model_names())}")
    data = OmegaConf.merge(OmegaConf.load(path), overrides)
    return check_model(structured(ModelConfig, data, f"conf/model/{name}.yaml"), f"conf/model/{name}.yaml")


def model_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def suggest(name: str, candidates: list[str]) -> str:
    """'; did you mean ...?' for close names, or a short list of what exists."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(lowered[c] for c in close) + "?"
    return f"; known: {', '.join(candidates[:12])}{', ...' if len(candidates) > 12 else ''}"


def to_run_config(cfg: Any) -> RunConfig:
    """Hydra's composed DictConfig -> validated RunConfig."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    if plain.get("task") is None:
        raise EvalkitError("no task given: pass task=<name> (python -m evalkit list shows them)")
    run = structured(RunConfig, plain, "config")
    check_model(run.model)
    check_task(run.task)
    check_encode(run.encode)
    return run


_ENCODE_CHOICES = {"packing": ("auto", "packed", "padded"), "varlen_kernel": ("auto", "flash", "flex", "sdpa")}


def check_encode(enc: EncodeConfig, where: str = "encode") -> EncodeConfig:
    if enc.batch_size < 1:
        raise EvalkitError(f"{where}.batch_size must be >= 1, got {enc.batch_size}")
    for key, allowed in _ENCODE_CHOICES.items():
        if getattr(enc, key) not in allowed:
            raise EvalkitError(f"{where}: {key}={getattr(enc, key)!r} is not one of {', '.join(allowed)}")
    if enc.max_tokens_per_batch is not None and enc.max_tokens_per_batch < 1:
        raise EvalkitError(f"{where}.max_tokens_per_batch must be >= 1 or null, got {enc.max_tokens_per_batch}")
    if enc.cache_max_gb is not None and enc.cache_max_gb <= 0:
        raise EvalkitError(f"{where}.cache_max_gb must be > 0 or null, got {enc.cache_max_gb}")
    if enc.cache_shard_texts < 1:
        raise EvalkitError(f"{where}.cache_shard_texts must be >= 1, got {enc.cache_shard_texts}")
    return enc
