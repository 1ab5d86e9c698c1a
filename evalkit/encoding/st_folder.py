"""A sentence-transformers folder read as its authors defined it: `modules.json` -> a typed pipeline, or a refusal.

Read, in the order sentence-transformers reads them:

    modules.json                         the pipeline; each module's `type` resolved by sentence-transformers' own
                                         resolver, so every spelling it accepts is accepted (2.x-5.x
                                         `sentence_transformers.models.Pooling`, 6.x `...modules.pooling.Pooling`)
    <Transformer path>/sentence_bert_config.json   max_seq_length, do_lower_case
    <Pooling path>/config.json           the mode(s) (legacy `pooling_mode_*_tokens` flags too), include_prompt
    <n>_Dense/config.json                in/out features, bias, activation (weights: evalkit.encoding.head)
    Normalize                            present or not
    config_sentence_transformers.json    prompts, default_prompt_name, similarity_fn_name, model_type
    tokenizer_config.json                padding_side (sentence-transformers pads as the tokenizer does)

evalkit runs a pipeline of Transformer -> Pooling -> Dense* -> Normalize? itself. Anything else (a module type it
does not implement, a key it does not know, a module out of that order) is named in `StFolder.unsupported`: such
a folder runs through `SentenceTransformer.encode` itself or is refused in one line, never approximated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evalkit import EvalkitError
from evalkit.errors import first_line

CANONICAL = {"transformer": "sentence_transformers.models.Transformer", "pooling": "sentence_transformers.models.Pooling",
             "dense": "sentence_transformers.models.Dense", "normalize": "sentence_transformers.models.Normalize"}
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# sentence-transformers' legacy pooling flags, in the order its Pooling concatenates the modes they switch on
LEGACY_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
                  "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
SIMILARITIES = ("cosine", "dot", "euclidean")  # those mteb scores with (`mteb.similarity_functions`)
# Transformer config keys that change nothing evalkit computes at these values (sentence-transformers' defaults)
TRANSFORMER_NEUTRAL = {"transformer_task": ("feature-extraction",), "module_output_name": (None, "token_embeddings"),
                       "processing_kwargs": ({}, None), "query_length": (None,), "document_length": (None,),
                       "query_expansion": (None,), "model_args": ({},), "tokenizer_args": ({},), "config_args": ({},),
                       "cache_dir": (None,), "backend": ("torch",), "unpad_inputs": (None, True, False)}
MODALITY_TEXT = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}


@dataclass(frozen=True)
class ModuleEntry:
    index: int
    name: str
    path: str
    type: str  # as modules.json spells it
    kind: str  # transformer, pooling, dense, normalize, or the class it resolved to (other modules)


@dataclass(frozen=True)
class PoolingSpec:
    modes: tuple[str, ...]
    include_prompt: bool = True
    dimension: int | None = None


@dataclass(frozen=True)
class DenseSpec:
    path: str
    in_features: int
    out_features: int
    bias: bool
    activation: str  # a torch.nn class path, e.g. torch.nn.modules.activation.Tanh


@dataclass(frozen=True)
class StFolder:
    """What a sentence-transformers folder says about how an embedding is made."""

    path: str
    modules: tuple[ModuleEntry, ...]
    backbone: str = ""  # the Transformer module's folder, relative ("" = the folder itself)
    max_seq_length: int | None = None  # None: the tokenizer's model_max_length, capped by the positions
    do_lower_case: bool = False
    pooling: PoolingSpec | None = None
    dense: tuple[DenseSpec, ...] = ()
    normalize: bool = False
    prompts: dict[str, str | None] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None  # None: cosine, as sentence-transformers defaults
    padding_side: str = "right"
    unsupported: tuple[str, ...] = ()  # why evalkit cannot run this folder itself (empty: it can)

    def record(self) -> dict[str, Any]:
        """What was read, as the run record and the experiment identity keep it."""
        out = asdict(self)
        out["modules"] = [f"{m.index}:{m.kind}:{m.path or '.'}" for m in self.modules]
        out["pooling"] = None if self.pooling is None else asdict(self.pooling)
        return out


def load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalkitError(f"{path}: cannot read {what}: {first_line(exc)}") from exc
    return data


def module_kind(type_name: str) -> str:
    """The kind of a modules.json `type`: transformer, pooling, dense or normalize where sentence-transformers
    resolves it to one of those classes (any spelling it accepts), else the class it resolves to, or
    `custom:<type>` outside its namespace (code evalkit does not import)."""
    if not type_name.startswith("sentence_transformers."):
        return f"custom:{type_name}"
    import warnings

    from sentence_transformers.util import import_from_string  # sentence-transformers' own resolver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cls = import_from_string(type_name)
        except ImportError as exc:
            import sentence_transformers

            raise EvalkitError(f"modules.json names {type_name!r}, which sentence-transformers "
                               f"{sentence_transformers.__version__} does not know ({exc})") from exc
        for kind, canonical in CANONICAL.items():
            if cls is import_from_string(canonical):
                return kind
    return f"{cls.__module__}.{cls.__qualname__}"


def read_modules(folder: Path) -> tuple[ModuleEntry, ...]:
    data = load_json(folder / "modules.json", "modules.json")
    if not isinstance(data, list) or not data:
        raise EvalkitError(f"{folder / 'modules.json'}: expected a list of modules")
    entries = []
    for item in sorted(data, key=lambda m: m.get("idx", 0)):
        path = str(item.get("path", ""))
        if path.startswith(("/", "..")) or "/../" in f"/{path}/":
            raise EvalkitError(f"{folder / 'modules.json'}: module path {path!r} leaves the folder")
        entries.append(ModuleEntry(int(item.get("idx", len(entries))), str(item.get("name", len(entries))), path,
                                   str(item["type"]), module_kind(str(item["type"]))))
    return tuple(entries)


def read_pooling(module: Path, why: list[str]) -> PoolingSpec:
    data = load_json(module / "config.json", "the pooling config")
    if "pooling_mode" in data:
        mode = data["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(mode for key, mode in LEGACY_POOLING.items() if data.get(key)) or ("mean",)
    bad = [m for m in modes if m not in POOLING_MODES]
    if bad:
        raise EvalkitError(f"{module / 'config.json'}: pooling mode {bad[0]!r} is not one of {', '.join(POOLING_MODES)}")
    known = {"word_embedding_dimension", "embedding_dimension", "pooling_mode", "include_prompt", *LEGACY_POOLING}
    why.extend(f"{module.name}/config.json: unknown key {key!r}" for key in sorted(set(data) - known))
    dimension = data.get("embedding_dimension", data.get("word_embedding_dimension"))
    return PoolingSpec(modes, bool(data.get("include_prompt", True)), dimension)


def read_dense(folder: Path, entry: ModuleEntry, why: list[str]) -> DenseSpec:
    data = load_json(folder / entry.path / "config.json", "the Dense config")
    for key, neutral in (("module_input_name", "sentence_embedding"), ("module_output_name", None),
                         ("use_residual", False)):
        if data.get(key, neutral) not in (neutral, "sentence_embedding"):
            why.append(f"{entry.path}: {key}={data[key]!r}")
    unknown = set(data) - {"in_features", "out_features", "bias", "activation_function", "module_input_name",
                           "module_output_name", "use_residual"}
    why.extend(f"{entry.path}/config.json: unknown key {key!r}" for key in sorted(unknown))
    activation = str(data.get("activation_function") or "torch.nn.modules.activation.Tanh")
    if not activation.startswith("torch."):
        why.append(f"{entry.path}: activation {activation!r} is not a torch.nn module")
    return DenseSpec(entry.path, int(data["in_features"]), int(data["out_features"]), bool(data.get("bias", True)),
                     activation)


def read_transformer(module: Path, why: list[str]) -> tuple[int | None, bool]:
    path = module / "sentence_bert_config.json"
    data = load_json(path, "sentence_bert_config.json") if path.is_file() else {}
    for key, value in data.items():
        if key in ("max_seq_length", "do_lower_case"):
            continue
        if key == "modality_config":
            if value not in (MODALITY_TEXT, None):
                why.append(f"sentence_bert_config.json: modality_config {json.dumps(value)[:60]}")
        elif key == "tokenizer_name_or_path":
            if value not in (None, "", str(module)):
                why.append(f"sentence_bert_config.json: a separate tokenizer {value!r}")
        elif value not in TRANSFORMER_NEUTRAL.get(key, ()):
            why.append(f"sentence_bert_config.json: {key}={json.dumps(value)[:60]}")
    max_len = data.get("max_seq_length")
    return (None if max_len is None else int(max_len)), bool(data.get("do_lower_case", False))


def read_st_folder(folder: str | Path) -> StFolder:
    """The folder's pipeline and settings; `unsupported` says what evalkit cannot run itself. One line
    (EvalkitError) for a folder that is not a sentence-transformers folder or contradicts itself."""
    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        raise EvalkitError(f"{folder} has no modules.json: not a sentence-transformers folder")
    modules = read_modules(folder)
    why: list[str] = []
    kinds = [m.kind for m in modules]
    order_ok = (kinds[:2] == ["transformer", "pooling"]
                and all(k == "dense" for k in kinds[2:len(kinds) - (kinds[-1] == "normalize")]))
    for m in modules:
        if m.kind not in CANONICAL:
            why.append(f"module {m.name} ({m.type})")
    if not why and not order_ok:
        why.append("modules in the order " + " -> ".join(kinds) + " (evalkit runs transformer -> pooling -> dense* "
                   "-> normalize)")
    info: dict[str, Any] = {"modules": modules}
    for m in modules:
        if m.kind == "transformer":
            info["backbone"] = m.path
            info["max_seq_length"], info["do_lower_case"] = read_transformer(folder / m.path, why)
        elif m.kind == "pooling":
            info["pooling"] = read_pooling(folder / m.path, why)
        elif m.kind == "dense":
            info["dense"] = (*info.get("dense", ()), read_dense(folder, m, why))
        elif m.kind == "normalize":
            info["normalize"] = True
            config = folder / m.path / "config.json"
            extra = load_json(config, "the Normalize config") if m.path and config.is_file() else {}
            if extra.get("module_input_name", "sentence_embedding") != "sentence_embedding":
                why.append(f"{m.path}: normalizes {extra['module_input_name']!r}")
    st_config = folder / "config_sentence_transformers.json"
    settings = load_json(st_config, "config_sentence_transformers.json") if st_config.is_file() else {}
    model_type = settings.get("model_type", "SentenceTransformer")
    if model_type != "SentenceTransformer":
        raise EvalkitError(f"{folder}: a sentence-transformers {model_type}, not a SentenceTransformer (dense "
                           f"embedder); evalkit evaluates dense embedders only")
    similarity = settings.get("similarity_fn_name")
    if similarity not in (None, *SIMILARITIES):
        raise EvalkitError(f"{st_config}: similarity_fn_name={similarity!r}; mteb scores with "
                           f"{', '.join(SIMILARITIES)} only")
    prompts = settings.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, (str, type(None))) for v in prompts.values()):
        raise EvalkitError(f"{st_config}: prompts must map names to strings")
    tok_config = folder / info.get("backbone", "") / "tokenizer_config.json"
    padding_side = (load_json(tok_config, "tokenizer_config.json") if tok_config.is_file() else {}).get(
        "padding_side") or "right"
    return StFolder(path=str(folder), prompts=dict(prompts), default_prompt_name=settings.get("default_prompt_name"),
                    similarity_fn_name=similarity, padding_side=padding_side, unsupported=tuple(why), **info)


def seq_length(folder: StFolder) -> int:
    """The max_length sentence-transformers truncates to: max_seq_length, else the tokenizer's model_max_length
    capped by the backbone's position embeddings."""
    if folder.max_seq_length is not None:
        return folder.max_seq_length
    root = Path(folder.path) / folder.backbone
    tok = root / "tokenizer_config.json"
    limit = (load_json(tok, "tokenizer_config.json") if tok.is_file() else {}).get("model_max_length")
    arch = root / "config.json"
    positions = (load_json(arch, "config.json") if arch.is_file() else {}).get("max_position_embeddings")
    candidates = [n for n in (limit, positions) if isinstance(n, int) and 0 < n < 10**9]
    if not candidates:
        raise EvalkitError(f"{folder.path}: no max_seq_length, tokenizer model_max_length or max_position_embeddings "
                           f"says where to truncate; set model.max_length=")
    return min(candidates)


def prompt_token_count(tokenizer, prompt: str) -> int:
    """How many tokens sentence-transformers leaves out of pooling for `prompt` (include_prompt: false): the
    prompt tokenized alone with the tokenizer's special tokens, less a trailing special token ([SEP], EOS)."""
    ids = tokenizer([prompt])["input_ids"][0]
    return len(ids) - (1 if ids and ids[-1] in set(tokenizer.all_special_ids) else 0)


def local_folder(name_or_path: str, revision: str | None) -> Path:
    """A local folder as it is; a hub id: its snapshot in the Hugging Face cache (downloaded unless offline)."""
    from evalkit.encoding.model import is_local, resolve_path

    source = resolve_path(name_or_path)
    if is_local(source):
        if not Path(source).is_dir():
            raise EvalkitError(f"model path is not a folder: {source}")
        return Path(source)
    from huggingface_hub import snapshot_download

    from evalkit.config import hub_offline
    from evalkit.hub import check_reachable, offline_error

    fix = "pass a local folder: model=<folder>"
    if not hub_offline():
        check_reachable(repr(source), fix)
    try:
        return Path(snapshot_download(source, revision=revision, local_files_only=hub_offline()))
    except Exception as exc:  # hub errors come in many kinds; the user needs one line
        if hub_offline():
            raise offline_error(repr(source), fix) from exc
        raise EvalkitError(f"cannot fetch {source!r}: {first_line(exc)}") from exc


def folder_name(name_or_path: str) -> str:
    """The results name of a folder model: a hub id as it is, a local folder as `local/<parent>-<folder>`."""
    from evalkit.encoding.model import is_local, resolve_path

    source = resolve_path(name_or_path)
    if not is_local(source):
        return source
    path = Path(source).resolve()
    return f"local/{path.parent.name}-{path.name}"


def why_not_evalkit(folder: StFolder) -> list[str]:
    """What makes evalkit hand this folder to sentence-transformers (empty: evalkit runs it itself)."""
    why = list(folder.unsupported)
    if folder.pooling is not None and len(folder.pooling.modes) > 1:
        why.append("pooling modes concatenated: " + "+".join(folder.pooling.modes))
    return why


def folder_model_config(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False,
                        name: str | None = None):
    """The ModelConfig a sentence-transformers folder (or hub id) defines, with `from_folder` set; a folder evalkit
    cannot run itself gets `encode_with: sentence_transformers`, or one line where that would run code from the
    model's repository without `trust_remote_code`."""
    from evalkit.config import EncodeWith, ModelConfig, check_model

    folder = read_st_folder(local_folder(name_or_path, revision))
    why = why_not_evalkit(folder)
    custom = [m for m in folder.modules if m.kind.startswith("custom:")]
    if custom and not trust_remote_code:
        raise EvalkitError(f"{name_or_path}: module {custom[0].name} is {custom[0].type!r}, code from the model's "
                           f"repository, which evalkit does not run itself; model.trust_remote_code=true runs the "
                           f"folder through SentenceTransformer.encode")
    pooling = folder.pooling.modes[0] if folder.pooling is not None and not why else "mean"
    try:
        max_length = seq_length(folder)
    except EvalkitError:
        if not why:
            raise
        max_length = ModelConfig.max_length  # sentence-transformers truncates as its modules say
    cfg = ModelConfig(
        name=name or folder_name(name_or_path), name_or_path=name_or_path, revision=revision,
        pooling=pooling, max_length=max_length, dtype="float32", normalize=folder.normalize,
        padding_side=folder.padding_side, trust_remote_code=trust_remote_code,
        prompts={"query": None, "document": None, **folder.prompts},  # sentence-transformers' own placeholders
        default_prompt_name=folder.default_prompt_name,
        include_prompt=folder.pooling.include_prompt if folder.pooling is not None else True,
        dense=[d.path for d in folder.dense], lower_case=folder.do_lower_case,
        similarity=folder.similarity_fn_name or "cosine", from_folder=True,
        encode_with=EncodeWith.sentence_transformers if why else EncodeWith.evalkit)
    from evalkit.config import structured

    return check_model(structured(ModelConfig, asdict(cfg), str(name_or_path)), str(name_or_path))


def protocol_extras(cfg) -> dict[str, Any]:
    """The folder-model settings that change an embedding, where they differ from evalkit's defaults (so the
    cache key and experiment identity of every other model stay as they were)."""
    extras: dict[str, Any] = {}
    if not cfg.include_prompt:
        extras["include_prompt"] = False
    if cfg.dense:
        extras["dense"] = list(cfg.dense)
    if cfg.lower_case:
        extras["lower_case"] = True
    if str(cfg.encode_with) != "evalkit":
        extras["encode_with"] = str(cfg.encode_with)
    if cfg.from_folder:
        extras["padding_side"] = str(cfg.padding_side)  # absolute positions move with left padding
    return extras
