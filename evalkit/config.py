"""Typed config schemas. Unknown keys and wrong types fail with one readable line.

Hydra composes `conf/config.yaml`, a `model/*.yaml` and a task from `tasks/` (the user's config folders
first, then evalkit's own: `evalkit.conf_path`); `to_run_config` turns the result into these dataclasses.
The config files are package data (`evalkit/conf/`, read through importlib.resources, so a wheel works
exactly like a clone); the repository's top-level `conf/` and `tasks/` are links to them.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evalkit import EvalkitError
from evalkit.conf_path import CONF_DIR, config_dirs, config_files, find_config, shown
from evalkit.errors import first_line


class Choice(str, Enum):
    """A closed set of config values. OmegaConf checks them (one line naming the allowed values); a member
    equals its string and prints as it, so `cfg.pooling == "last"` and f-strings read naturally."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class TaskType(Choice):
    """mteb's text task types: the paper's seven, then the others mteb 2 evaluates on text."""

    Classification = "Classification"
    Clustering = "Clustering"
    PairClassification = "PairClassification"
    Reranking = "Reranking"
    Retrieval = "Retrieval"
    STS = "STS"
    Summarization = "Summarization"
    BitextMining = "BitextMining"
    MultilabelClassification = "MultilabelClassification"
    Regression = "Regression"
    InstructionRetrieval = "InstructionRetrieval"
    InstructionReranking = "InstructionReranking"
    ZeroShotClassification = "ZeroShotClassification"


class Pooling(Choice):
    last = "last"  # the final hidden state of the EOS evalkit appends
    mean = "mean"
    cls = "cls"
    # sentence-transformers' other modes, as its Pooling computes them (tokens as the tokenizer makes them)
    lasttoken = "lasttoken"
    weightedmean = "weightedmean"
    max = "max"
    mean_sqrt_len_tokens = "mean_sqrt_len_tokens"


class Similarity(Choice):
    """How embeddings are scored (sentence-transformers' similarity_fn_name, as mteb scores them)."""

    cosine = "cosine"
    dot = "dot"
    euclidean = "euclidean"


class EncodeWith(Choice):
    evalkit = "evalkit"  # evalkit's own forward pass, pooling and head
    sentence_transformers = "sentence_transformers"  # SentenceTransformer.encode itself (modules evalkit lacks)


class DType(Choice):
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class PaddingSide(Choice):
    left = "left"
    right = "right"


class Packing(Choice):
    auto = "auto"  # packed where the model allows it, else padded
    packed = "packed"
    padded = "padded"


class VarlenKernel(Choice):
    auto = "auto"  # flash on CUDA in half precision, else sdpa
    flash = "flash"  # PyTorch's own FlashAttention-2 varlen op
    flex = "flex"
    sdpa = "sdpa"
    flash_attn = "flash_attn"  # the flash-attn package's varlen kernel (optional; CUDA)


class FusedOps(Choice):
    none = "none"  # PyTorch's own RMSNorm, rotary embedding and SwiGLU
    liger = "liger"  # liger-kernel's Triton kernels for them (optional; CUDA)


TASK_TYPES = tuple(t.value for t in TaskType)


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE forbids the Hugging Face hub (the one place that reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("", "0", "false", "no", "off")


@dataclass
class TaskSpec:
    """One benchmark task: which mteb task, which split, and its one-sentence instruction. A task file gives
    the instruction and aliases; type, split, hf_subset and metric come from mteb's metadata unless the file
    sets them (`evalkit.tasks.complete_spec`); a run refuses a spec where any is still unset."""

    name: str = MISSING  # CLI name = file stem in tasks/ (an mteb task without a file: its mteb name)
    mteb_task: str = MISSING  # a task file: its file name unless it says otherwise
    type: Optional[TaskType] = None  # None: mteb's metadata (type)
    split: Optional[str] = None  # None: mteb's eval split (test where it has one)
    hf_subset: str = "default"  # the subset whose score is the headline (a task file without it: mteb's English one)
    metric: Optional[str] = None  # mteb v2 key of the main metric; None: mteb's main_score
    instruction: Optional[str] = None  # None: resolved by evalkit.instructions (task file, then mteb's prompts)
    hf_subsets: Optional[list[str]] = None  # subsets to evaluate; None: hf_subset (a local folder: those it holds)
    symmetric: bool = False  # documents are encoded like queries (QuoraRetrieval)
    aliases: list[str] = field(default_factory=list)


@dataclass
class PromptConfig:
    """Where the instruction goes. The e5 template; which sides get it is data, not code."""

    template: str = "Instruct: {instruction}\nQuery: {text}"
    # task types whose every input (documents too) gets the instruction
    instruct_documents_for: list[TaskType] = field(default_factory=list)


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
    pooling: Pooling = Pooling.last
    max_length: int = 512  # including BOS and the EOS evalkit appends
    dtype: DType = DType.float32  # the forward pass; pooling and scoring are float32
    device: str = "auto"
    normalize: bool = True
    unnormalized_types: list[TaskType] = field(default_factory=list)  # task types left unnormalized
    padding_side: PaddingSide = PaddingSide.right
    attn_implementation: str = "auto"  # auto: the best the architecture supports (flash, sdpa, else eager)
    trust_remote_code: bool = False
    prompt: Optional[PromptConfig] = None  # None: the model takes no instruction
    # a sentence-transformers prompts dict, or fixed query/document prefixes (evalkit.encoding.prompt)
    prompts: Optional[dict[str, Optional[str]]] = None
    default_prompt_name: Optional[str] = None  # sentence-transformers' default_prompt_name
    include_prompt: bool = True  # false: pooling leaves the prompt's tokens out (sentence-transformers' Pooling)
    dense: list[str] = field(default_factory=list)  # the folder's Dense modules after pooling, in order
    lower_case: bool = False  # the tokenizer lower-cases its input (sentence-transformers' do_lower_case)
    similarity: Similarity = Similarity.cosine
    from_folder: bool = False  # the protocol is the sentence-transformers folder's own (model=<folder or hub id>)
    encode_with: EncodeWith = EncodeWith.evalkit
    random_init: Optional[RandomInit] = None
    # what mteb's ModelMeta says of the model (model_meta.json); mteb's own registry entry is used where it has one
    license: Optional[str] = None  # e.g. mit, apache-2.0 (the model card's license id)
    languages: Optional[list[str]] = None  # ISO 639-3 + script, e.g. [eng-Latn]
    release_date: Optional[str] = None  # YYYY-MM-DD
    reference: Optional[str] = None  # the model card's URL


@dataclass
class EncodeConfig:
    batch_size: Optional[int] = None  # at most this many texts per forward pass; None = the token budget alone
    max_tokens_per_batch: Optional[int] = None  # tokens per forward pass; None = GPU: free memory and model size,
    # CPU: calibrated on the first large call and remembered per model and machine (<cache root>/budgets.json)
    packing: Packing = Packing.auto  # packed = no padding (llama-family decoders)
    varlen_kernel: VarlenKernel = VarlenKernel.auto  # attention inside packed batches
    compile: bool = False  # torch.compile the packed forward (dynamic shapes); compile time in the run record
    fused_ops: FusedOps = FusedOps.none  # packed forward: liger = fused Triton RMSNorm/RoPE/SwiGLU (CUDA)
    cache: bool = True  # embedding cache: re-runs and shared corpora skip the model
    cache_dir: Optional[str] = None  # default $EVALKIT_CACHE/embeddings or ~/.cache/evalkit/embeddings
    cache_max_gb: Optional[float] = None  # least recently used shards go beyond this size
    cache_shard_texts: int = 4096  # texts per cache shard: a killed run resumes from the last full shard
    show_progress: bool = True


@dataclass
class RunConfig:
    task: TaskSpec = MISSING
    model: ModelConfig = MISSING
    data_dir: Optional[str] = None  # a local folder for this task: BEIR (retrieval) or an mteb dataset folder
    data_root: Optional[str] = None  # a folder of BEIR folders named by the tasks' BEIR names (sweeps)
    results_dir: str = "results"  # <results_dir>/<org__model>/<revision>/<MtebTask>.json
    overwrite: bool = False  # a finished task is skipped unless true
    strict_instructions: bool = False  # an instruction from mteb's prompts (not task.instruction or a task file) fails
    encode: EncodeConfig = field(default_factory=EncodeConfig)


def structured(schema: type, data: Any, where: str):
    """Merge `data` onto `schema`; unknown keys, missing values and bad types raise EvalkitError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        msg = first_line(exc)
        key = getattr(exc, "full_key", None)
        raise EvalkitError(f"{where}: {key}: {msg}" if key and key not in msg else f"{where}: {msg}") from exc
    return obj


def check_model(model: ModelConfig, where: str = "model config") -> ModelConfig:
    if model.max_length < 2:
        raise EvalkitError(f"{where}: max_length must be at least 2, got {model.max_length}")
    if model.prompt is not None and model.prompts is not None:
        raise EvalkitError(f"{where}: both prompt (an instruction template) and prompts (prefixes) are set; "
                           f"a model has one prompt scheme")
    return model


def check_task(task: TaskSpec, where: str = "task config") -> TaskSpec:
    if task.instruction is not None and not task.instruction.strip():
        raise EvalkitError(f"{where}: the instruction is empty")
    if task.hf_subsets is not None and not task.hf_subsets:
        raise EvalkitError(f"{where}: hf_subsets is an empty list (null evaluates the default)")
    return task


def load_model_config(name: str, **overrides: Any) -> ModelConfig:
    """`model/<name>.yaml` from the config folders, composed by Hydra as a run composes it (its defaults list
    included), with keys overridden, validated."""
    path = find_config(f"model/{name}.yaml")
    if path is None:
        raise EvalkitError(f"unknown model {name!r}{suggest(name, model_names())}")
    data = OmegaConf.merge(OmegaConf.to_container(compose_config([f"model={name}"]).model), overrides)
    return check_model(structured(ModelConfig, data, shown(path)), shown(path))


def packaged_model_config(name: str) -> ModelConfig | None:
    """`model/<name>.yaml` as evalkit ships it (its defaults list read from evalkit's files too), whatever a
    user's config folder shadows it with; None when evalkit ships no such file."""
    path = find_config(f"model/{name}.yaml", (CONF_DIR,))
    if path is None:
        return None
    data = OmegaConf.to_container(compose_config([f"model={name}"], dirs=(CONF_DIR,)).model)
    return check_model(structured(ModelConfig, data, shown(path)), shown(path))


def searchpath_override(dirs: Sequence[Path] | None = None) -> str:
    """Hydra's search path: the config folders (default `config_dirs()`), the user's first (Hydra takes the
    first file it finds)."""
    dirs = config_dirs() if dirs is None else dirs
    for folder in dirs:
        if "'" in str(folder):
            raise EvalkitError(f"config folder {folder}: a quote in its path is not supported")
    return "hydra.searchpath=[" + ",".join(f"'file://{folder}'" for folder in dirs) + "]"


def register_primary_config() -> None:
    """conf/config.yaml as Hydra's primary config, and the schema it names first (`evalkit_schema`). It comes
    from the config store rather than a config folder, so that every folder, evalkit's own conf/ included,
    can sit on Hydra's search path behind the user's (a primary config path would come first, and its model
    files would shadow the user's)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="config", node=OmegaConf.load(CONF_DIR / "config.yaml"))
    store.store(name="evalkit_schema", node=RunConfig)


def compose_config(overrides: list[str], dirs: Sequence[Path] | None = None):
    """The one composition path: Hydra's compose API over conf/config.yaml with `overrides` and the config
    folders (`dirs`, default `config_dirs()`) as its search path. A run composes the same way through
    `hydra.main` (Hydra's launcher, for -m sweeps); tests and every other reader call this. Works inside a
    running Hydra job too (the job's Hydra is set aside for the call)."""
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    register_primary_config()
    check_config_files(dirs)
    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize(config_path=None, version_base="1.3"):
            return compose(config_name="config", overrides=[*overrides, searchpath_override(dirs)])
    except RecursionError as exc:  # Hydra follows a defaults list that includes itself without end
        raise EvalkitError(f"composing the config ({' '.join(overrides)}): a defaults list includes itself") from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise EvalkitError(f"composing the config ({' '.join(overrides)}): {str(exc).strip().splitlines()[0]}") from exc
    finally:
        if running is not None:
            GlobalHydra.instance().initialize(running)


def load_yaml(path: Path) -> Any:
    """A config file's YAML; a syntax error is one line naming the file, line and column."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown(path)}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise EvalkitError(f"{where}: not valid YAML ({problem})") from exc
    except UnicodeDecodeError as exc:
        raise EvalkitError(f"{shown(path)}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def check_config_files(dirs: Sequence[Path] | None = None) -> None:
    """Every YAML file Hydra may compose from the user's config folders (model/, hydra/) parses, so a typo is
    one line naming file and line rather than Hydra's traceback. evalkit's own files are checked by its tests."""
    for folder in config_dirs() if dirs is None else dirs:
        if folder == CONF_DIR:
            continue
        for sub in ("model", "hydra"):
            for path in sorted((folder / sub).rglob("*.yaml")) if (folder / sub).is_dir() else ():
                load_yaml(path)


def model_names() -> list[str]:
    return list(config_files("model"))


def suggest(name: str, candidates: list[str]) -> str:
    """'; did you mean ...?' for close names, or a short list of what exists."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(lowered[c] for c in close) + "?"
    return f"; known: {', '.join(candidates[:12])}{', ...' if len(candidates) > 12 else ''}"


def to_run_config(cfg: Any) -> RunConfig:
    """Hydra's composed DictConfig -> validated RunConfig."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    if plain.get("task") in (None, MISSING):
        raise EvalkitError("no task given: pass task=<name> (python -m evalkit list shows them)")
    run = structured(RunConfig, plain, "config")
    unset = [key for key in ("type", "split", "metric") if getattr(run.task, key) is None]
    if unset:  # a spec not completed from mteb's metadata would score the wrong split or metric
        raise EvalkitError(f"task {run.task.name}: {', '.join(unset)} not set (evalkit.tasks.complete_spec fills them)")
    check_model(run.model)
    check_task(run.task)
    check_encode(run.encode)
    return run


def check_encode(enc: EncodeConfig, where: str = "encode") -> EncodeConfig:
    if enc.batch_size is not None and enc.batch_size < 1:
        raise EvalkitError(f"{where}.batch_size must be >= 1 or null, got {enc.batch_size}")
    if enc.max_tokens_per_batch is not None and enc.max_tokens_per_batch < 1:
        raise EvalkitError(f"{where}.max_tokens_per_batch must be >= 1 or null, got {enc.max_tokens_per_batch}")
    if enc.cache_max_gb is not None and enc.cache_max_gb <= 0:
        raise EvalkitError(f"{where}.cache_max_gb must be > 0 or null, got {enc.cache_max_gb}")
    if enc.cache_shard_texts < 1:
        raise EvalkitError(f"{where}.cache_shard_texts must be >= 1, got {enc.cache_shard_texts}")
    return enc


def parse_overrides(items: list[str], keys: tuple[str, ...], nested: tuple[str, ...] = ()) -> dict[str, str]:
    """The one `key=value` parser of the commands (plan, check; a run checks its keys with `check_override_key`
    before Hydra parses them): each word is key=value, a key comes once, and it is one of `keys` or a dotted
    RunConfig key under one of `nested` (`model.dtype`, checked against the schema). One line on any error,
    naming the closest key."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise EvalkitError(f"expected key=value, got {item!r}")
        if key.split(".")[0] in nested and "." in key:
            check_override_key(key)
        elif key not in keys:
            known = [*keys, *(f"{n}.<key>" for n in nested)]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            raise EvalkitError(f"unknown key {key!r}; " + (f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"))
        if key in out:
            raise EvalkitError(f"{key} given twice ({key}={out[key]} and {key}={value})")
        out[key] = value
    return out


def check_override_key(key: str, extra: tuple[str, ...] = ()) -> None:
    """A dotted override key (`encode.batch_size`) must name a RunConfig field (or one of `extra`, top level),
    so a typo fails with one line naming the closest key, before Hydra turns it into another error."""
    import dataclasses
    import typing

    schema: Any = RunConfig
    parts = key.split(".")
    for depth, part in enumerate(parts):
        hints = typing.get_type_hints(schema)
        known = [f.name for f in dataclasses.fields(schema)] + (list(extra) if depth == 0 else [])
        if part not in known:
            prefix = "".join(f"{p}." for p in parts[:depth])
            close = difflib.get_close_matches(part, known, n=1, cutoff=0.6)
            hint = f"did you mean {prefix}{close[0]}?" if close else f"known: {', '.join(prefix + k for k in known)}"
            raise EvalkitError(f"unknown key {key!r}; {hint}")
        if part not in hints:
            return  # an extra top-level key (suite): its value is checked elsewhere
        schema = next((a for a in typing.get_args(hints[part]) if a is not type(None)), hints[part])  # Optional[X]
        if not dataclasses.is_dataclass(schema):
            return  # a value, a list or a free dict (random_init.config): nothing below to check by name
