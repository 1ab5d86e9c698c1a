"""The backbone: load weights and tokenizer, turn texts into token ids, run the forward pass.

Token ids for last-token pooling are built here, not by the tokenizer's post-processor:
BOS + text truncated to max_length - 2 + EOS. Some tokenizers (transformers >= 5) drop the
EOS, or the BOS, silently; building the ids ourselves and asserting them makes that impossible.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from evalkit import EvalkitError
from evalkit.config import ModelConfig, hub_offline
from evalkit.encoding.architecture import attention_for, check_positions
from evalkit.encoding.pooling import pool_modes
from evalkit.files import atomic_write, cache_root
from evalkit.hub import check_reachable, offline_error
from evalkit.errors import first_line

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_path(name_or_path: str) -> str:
    """`pkg:<module>/<rel>` -> the folder inside the installed package; other values unchanged."""
    if not name_or_path.startswith("pkg:"):
        return name_or_path
    module, _, rel = name_or_path[4:].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EvalkitError(f"package {module!r} is not installed (needed for {name_or_path})")
    return str(Path(spec.submodule_search_locations[0]) / rel)


def is_local(path: str) -> bool:
    return path.startswith(("/", ".", "~")) or os.path.exists(path)


SENTENCEPIECE_CONFIG = {
    "tokenizer_class": "LlamaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "add_bos_token": True,
    "add_eos_token": False,
}


def sentencepiece_folder(model_file: Path) -> Path:
    """A tokenizer folder around a bare sentencepiece model (the Mistral-7B tokenizer.model), under
    `<cache root>/tokenizers/<sha256 of the model>`. A folder there is used only when its files are exactly
    what would be written (a truncated or edited file is rebuilt, with a warning); where the cache root cannot
    be written, the folder is built in a temporary folder of this process instead."""
    data = model_file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    folder = cache_root() / "tokenizers" / digest[:16]
    config = json.dumps(SENTENCEPIECE_CONFIG).encode()
    if _holds(folder, data, config):
        return folder
    if folder.exists():
        log.warning("tokenizer folder %s does not hold what evalkit wrote there (truncated or changed); "
                    "rebuilding it", folder)
    try:
        return _build_tokenizer_folder(folder, data, config)
    except OSError as exc:
        temporary = Path(tempfile.mkdtemp(prefix="evalkit-tokenizer-"))
        atexit.register(shutil.rmtree, temporary, True)
        log.warning("cannot write the tokenizer folder under %s (%s); building it in %s for this run",
                    cache_root(), exc.strerror or exc, temporary)
        return _build_tokenizer_folder(temporary, data, config)


def _holds(folder: Path, data: bytes, config: bytes) -> bool:
    try:
        return ((folder / "tokenizer.model").read_bytes() == data
                and (folder / "tokenizer_config.json").read_bytes() == config)
    except OSError:
        return False


def _build_tokenizer_folder(folder: Path, data: bytes, config: bytes) -> Path:
    atomic_write(folder / "tokenizer.model", data)
    atomic_write(folder / "tokenizer_config.json", config)
    return folder


def load_tokenizer(cfg: ModelConfig, local_only: bool = False):
    """The model's tokenizer; `local_only`: from local files and the Hugging Face cache only, never the hub."""
    from transformers import AutoTokenizer

    source = resolve_path(cfg.tokenizer or cfg.name_or_path)
    if is_local(source) and not os.path.exists(source):
        raise EvalkitError(f"{'tokenizer' if cfg.tokenizer else 'model'} path does not exist: {source}")
    if os.path.isfile(source):  # a bare sentencepiece model file
        source = str(sentencepiece_folder(Path(source)))
    revision = None if is_local(source) else cfg.revision
    extra = {"local_files_only": True} if local_only else {}
    tok = _from_hub(AutoTokenizer, source, revision=revision, trust_remote_code=cfg.trust_remote_code, **extra)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # e5-mistral pads with EOS; the mask says which tokens are real
    if cfg.lower_case:
        lowercase_tokenizer(tok)
    return tok


def lowercase_tokenizer(tokenizer) -> None:
    """Make the tokenizer lower-case its input as sentence-transformers' do_lower_case does: a Lowercase
    normalizer in front of the fast tokenizer's own (unless it has one); the prompt is lower-cased too."""
    if not getattr(tokenizer, "is_fast", False):
        raise EvalkitError("do_lower_case needs a fast tokenizer (tokenizer.json)")
    from tokenizers.normalizers import Lowercase, Sequence

    backend = tokenizer.backend_tokenizer
    current = backend.normalizer
    parts = list(current) if isinstance(current, Sequence) else [] if current is None else [current]
    if not any(isinstance(part, Lowercase) for part in parts):
        backend.normalizer = Sequence([Lowercase(), *parts])


def check_model_folder(cfg: ModelConfig) -> None:
    """A local `name_or_path` must be a model folder: config.json and safetensors weights (one line if not)."""
    if cfg.random_init is not None:
        return
    source = resolve_path(cfg.name_or_path)
    if not is_local(source):
        return
    folder = Path(source)
    if not folder.exists():
        raise EvalkitError(f"model path does not exist: {source}")
    if not folder.is_dir():
        raise EvalkitError(f"model path is not a folder: {folder}")
    missing = [what for what, there in (("config.json", (folder / "config.json").is_file()),
                                        ("*.safetensors weights", any(folder.glob("*.safetensors")))) if not there]
    if missing:
        raise EvalkitError(f"{folder} holds no model files (no {' and no '.join(missing)}): it is not a model folder")


def random_init_device(device_type: str) -> str:
    """Where `random_init` weights are drawn, which decides their numbers: on the GPU the model runs on (a
    7B-shaped model in seconds), else on the CPU. The weights fingerprint and the cache key name it too."""
    return "cuda" if device_type == "cuda" else "cpu"


def load_model(cfg: ModelConfig, device: torch.device):
    from transformers import AutoConfig, AutoModel

    dtype = DTYPES[cfg.dtype]
    if cfg.random_init is not None:
        arch = AutoConfig.for_model(cfg.random_init.model_type, **cfg.random_init.config)
        check_positions(arch, cfg)
        attn = attention_for(cfg, arch, device, dtype)
        if random_init_device(device.type) == "cuda":
            with torch.random.fork_rng(devices=[device]), torch.device(device):
                torch.manual_seed(cfg.random_init.seed)
                return AutoModel.from_config(arch, dtype=dtype, attn_implementation=attn).eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.random_init.seed)
            model = AutoModel.from_config(arch, dtype=torch.float32, attn_implementation=attn)
        model = model.to(dtype)
    else:
        check_model_folder(cfg)
        source = resolve_path(cfg.name_or_path)
        revision = None if is_local(source) else cfg.revision
        arch = _from_hub(AutoConfig, source, revision=revision, trust_remote_code=cfg.trust_remote_code)
        check_positions(arch, cfg)
        model = _from_hub(
            AutoModel,
            source,
            revision=revision,
            trust_remote_code=cfg.trust_remote_code,
            dtype=dtype,
            use_safetensors=True,
            attn_implementation=attention_for(cfg, arch, device, dtype),
        )
    return model.to(device).eval()


def _from_hub(cls, source: str, **kwargs):
    """from_pretrained, with offline / unreachable / missing-model failures turned into one line."""
    fix = "pass a local folder as model.name_or_path= (and model.tokenizer=)"
    if not is_local(source) and not kwargs.get("local_files_only"):
        check_reachable(repr(source), fix)
    try:
        return cls.from_pretrained(source, **kwargs)
    except OSError as exc:
        if (hub_offline() or kwargs.get("local_files_only")) and not is_local(source):
            raise offline_error(repr(source), fix) from exc
        raise EvalkitError(f"cannot load {source!r}: {first_line(exc)}") from exc


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def token_ids(tokenizer, texts: list[str], cfg: ModelConfig) -> list[list[int]]:
    """Token ids per text. Last pooling: [BOS] + text[: max_length - 2] + [EOS], checked (EvalkitError)."""
    if cfg.pooling != "last":
        return tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if eos is None:
        raise EvalkitError(f"tokenizer of {cfg.name} has no EOS token; last-token pooling needs one")
    head = [] if bos is None else [bos]
    room = cfg.max_length - 1 - len(head)
    bodies = tokenizer(texts, add_special_tokens=False)["input_ids"]
    ids = [head + body[:room] + [eos] for body in bodies]
    for seq in ids:
        if seq[-1] != eos or (bos is not None and seq[0] != bos) or len(seq) > cfg.max_length:
            raise EvalkitError(f"{cfg.name}: a tokenized text is not [BOS] + text + [EOS] within max_length="
                               f"{cfg.max_length} (got {len(seq)} tokens); last-token pooling would read the wrong "
                               f"token")
    return ids


def pad_batch(seqs: list[list[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


CAUSAL_TYPES = ("mistral", "mixtral", "llama", "qwen2", "qwen3", "gemma", "gemma2", "phi3")


def not_causal(model) -> str | None:
    """Why `model` may attend both ways despite a decoder's model type (None: nothing says so). LLM2Vec-style
    and other bidirectional conversions keep the model type and change the config or the attention layers."""
    cfg = model.config
    if getattr(cfg, "is_causal", None) is False:
        return "its config sets is_causal=false (bidirectional attention)"
    if getattr(cfg, "auto_map", None):
        return "its config names its own code (auto_map)"
    layers = getattr(model, "layers", None) or []
    if any(getattr(getattr(layer, "self_attn", None), "is_causal", True) is False for layer in layers):
        return "its attention layers are not causal"
    return None


def mask_needed(model, padding_side: str, trust_remote_code: bool = False) -> bool:
    """False for a causal decoder padded on the right: no real token can see a pad after it. Code from the
    model's repository (`trust_remote_code`) may attend both ways, so it keeps the mask."""
    causal = model.config.model_type in CAUSAL_TYPES and not trust_remote_code and not_causal(model) is None
    return not (padding_side == "right" and causal)


@torch.inference_mode()
def forward_padded(model, ids: torch.Tensor, mask: torch.Tensor, pooling: str, device: torch.device,
                   use_mask: bool = True, prompt_tokens: int | None = None) -> torch.Tensor:
    """Padded ids and mask (any device) -> pooled float32 embeddings (B, H) on `device`.

    Without `use_mask` the model gets no attention mask, so sdpa takes its causal flash path;
    only right for a causal decoder padded on the right (see `mask_needed`). `prompt_tokens`: each row's first
    that many real tokens are left out of the pooling (include_prompt: false)."""
    ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
    out = model(input_ids=ids, attention_mask=mask if use_mask else None, use_cache=False)
    lengths = None if not prompt_tokens else torch.full((ids.shape[0],), prompt_tokens, device=device)
    return pool_modes((str(pooling),), out.last_hidden_state, mask, lengths)


def device_name(device: torch.device) -> str:
    """What the run record and `plan` call a device: the GPU's model, or the CPU's (with its thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {cpu_model()} ({torch.get_num_threads()} threads)"


def cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_bytes(device: torch.device) -> int:
    """Peak device memory of this process (CUDA allocator), or its peak resident memory on a CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
