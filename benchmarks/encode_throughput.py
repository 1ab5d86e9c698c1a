"""Encoding throughput: evalkit's encoder against the usual code paths, side by side in one run.

Decoder workloads (a randomly initialised Mistral of `--shape`; texts of random token ids plus EOS):

  short   lengths log-normal, median 220 tokens (sigma 0.6), clipped to [8, 4095]   (issue 5)
  long    lengths log-normal, median 2,000 tokens (sigma 0.6), clipped to [8, 4095] (max_length 4096)

  card        model-card order: batches of 32 in input order, padded to the longest, with mask
  mteb        sorted by length, batches of 32, padded, with mask (mteb / sentence-transformers)
  evalkit     Encoder.embed_ids: batches cut by tokens, packed (or padded) as configured, no cache
  + variants  `--variant PACKING/KERNEL[,key=value...]`: evalkit with other encode settings, e.g.
              packed/flash,compile=true   packed/flash,fused_ops=liger   packed/flash_attn
              packed/flash,max_tokens_per_batch=131072   padded/auto   packed/flex
              (torch.compile and flex compile during an untimed pass first; the compile time is printed)

Encoder-only (`--st minilm|base-mpnet|base-bert`, on a CPU): evalkit against sentence-transformers' own
`encode` (batch 32) on the same texts (`--texts-file` a BEIR corpus.jsonl, else synthetic English-like words),
evalkit with its CPU token budget calibrated in this run and with `--max-tokens` if given, and evalkit running the
folder as `model=<folder>` reads it (its own modules and settings, no evalkit YAML).

Every path is warmed up, then timed `--repeat` times with the paths interleaved round by round (a change in
load hits every path alike); the best round counts. Printed: real tokens/s, ratio to the first path (mteb, or
sentence-transformers), padding, peak memory, the worst cosine against the first path's embeddings.

    python benchmarks/encode_throughput.py                       # small Mistral on the CPU
    python benchmarks/encode_throughput.py --shape 7b --dtype float16 --texts 2048   # on a GPU
    python benchmarks/encode_throughput.py --st minilm --texts 2000 --repeat 3      # CPU, vs sentence-transformers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from evalkit.config import EncodeConfig, ModelConfig, RandomInit, check_encode, structured  # noqa: E402
from evalkit.encoding.model import device_name, pad_batch, pick_device  # noqa: E402
from evalkit.encoding.pooling import pool  # noqa: E402

SHAPES = {
    "small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=2),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "7b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8),
}
MEDIANS = {"short": 220, "long": 2000}


def workload(n: int, seed: int = 0, vocab: int = 32000, bos: int = 1, eos: int = 2, median: int = 220
             ) -> list[list[int]]:
    """n token id lists: BOS + random ids + EOS, lengths log-normal(median, sigma 0.6) in [8, 4095] + EOS."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(np.exp(rng.normal(np.log(median), 0.6, n))), 8, 4095).astype(int)
    return [[bos] + rng.integers(3, vocab, int(length) - 1).tolist() + [eos] for length in lengths]


def model_config(shape: str, dtype: str, device: str, attn: str = "auto") -> ModelConfig:
    arch = {**SHAPES[shape], "vocab_size": 32000, "max_position_embeddings": 4096, "sliding_window": None}
    return ModelConfig(name=f"bench/random-mistral-{shape}", name_or_path="random:mistral", revision="seed0",
                       tokenizer="pkg:mistral_common/data/tokenizer.model.v1", pooling="last", max_length=4096,
                       dtype=dtype, device=device, attn_implementation=attn,
                       random_init=RandomInit(model_type="mistral", seed=0, config=arch))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def padded_path(model, seqs: list[list[int]], order: list[int], device, batch_size: int = 32):
    """HF forward with attention mask over batches of `batch_size` rows taken in `order`."""
    out = torch.empty((len(seqs), model.config.hidden_size), dtype=torch.float32)
    computed = 0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids, mask = pad_batch([seqs[i] for i in rows], 2, "right")
        ids, mask = ids.to(device), mask.to(device)
        hidden = model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        out[rows] = pool("last", hidden, mask).cpu()
        computed += ids.numel()
    return out, computed


def evalkit_path(encoder, seqs):
    """Encoder.embed_ids: evalkit's batching and forward over the ready token ids, no cache."""
    before = encoder.stats.padded_tokens
    out = encoder.embed_ids(seqs)
    return torch.from_numpy(out), encoder.stats.padded_tokens - before


def parse_variant(text: str) -> tuple[str, dict]:
    """'packed/flash,compile=true' -> (label, EncodeConfig keys), checked like a config."""
    head, *pairs = text.split(",")
    packing, _, kernel = head.partition("/")
    settings = {"packing": packing, "varlen_kernel": kernel or "auto"}
    for pair in pairs:
        key, _, value = pair.partition("=")
        settings[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    check_encode(structured(EncodeConfig, settings, f"--variant {text}"))
    return text, settings


class Timed:
    """One timed path: `prepare` (untimed, once) and `run` -> (embeddings, tokens computed)."""

    def __init__(self, name, run, prepare=None, real_tokens=None):
        self.name, self.run, self.prepare, self.real_tokens = name, run, prepare, real_tokens
        self.seconds: list[float] = []
        self.peak = self.emb = self.computed = None
        self.note = ""


def time_paths(paths: list[Timed], device, repeat: int) -> None:
    """Prepare every path, then `repeat` rounds of all paths in turn (interleaved); failures are printed."""
    for path in list(paths):
        try:
            if path.prepare is not None:
                path.note = path.prepare() or ""
        except Exception as exc:  # one failing variant must not hide the others
            print(f"{path.name}: FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)
            paths.remove(path)
    for number in range(repeat):
        for path in list(paths):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            start = time.perf_counter()
            try:
                emb, computed = path.run()
            except Exception as exc:
                print(f"{path.name}: FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)
                paths.remove(path)
                continue
            sync(device)
            path.seconds.append(time.perf_counter() - start)
            path.emb, path.computed = emb, computed
            if device.type == "cuda":
                path.peak = max(path.peak or 0, torch.cuda.max_memory_allocated(device))
            print(f"  round {number + 1}: {path.name}: {path.seconds[-1]:.2f} s", flush=True)


def report(paths: list[Timed], count_tokens, header: dict, out_json: str | None) -> None:
    rows, reference, base = [], None, None
    for path in paths:
        emb = torch.as_tensor(path.emb).float()
        reference = emb if reference is None else reference
        real = count_tokens(len(emb))
        rate = real / min(path.seconds)
        base = base or rate
        computed = path.computed if path.computed else real
        row = {"path": path.name, "texts": len(emb), "tokens_per_s": rate, "seconds": path.seconds,
               "ratio": rate / base, "padding_fraction": 1 - real / computed,
               "peak_memory_gb": path.peak / 2**30 if path.peak else None,
               "min_cosine_vs_first": F.cosine_similarity(emb, reference[:len(emb)]).min().item(),
               "finite": bool(torch.isfinite(emb).all()), "note": path.note}
        rows.append(row)
    print(f"\n{header['description']}\n\n| path | real tokens/s | vs first | padding | peak GiB | min cos vs first | "
          f"note |\n|---|---|---|---|---|---|---|")
    for r in rows:
        peak = f"{r['peak_memory_gb']:.1f}" if r["peak_memory_gb"] else "-"
        print(f"| {r['path']} | {r['tokens_per_s']:,.0f} | {r['ratio']:.2f}x | {r['padding_fraction']:.1%} | {peak} | "
              f"{r['min_cosine_vs_first']:.6f} | {r['note']} |")
    if out_json:
        Path(out_json).write_text(json.dumps({**header, "rows": rows}, indent=1))


def decoder_paths(args, device, dtype) -> tuple[list[Timed], list[list[int]], str]:
    from evalkit.encoding.encoder import Encoder

    cfg = model_config(args.shape, dtype, str(device))
    if args.tokenizer:
        cfg.tokenizer = args.tokenizer
    built = time.perf_counter()
    base_settings = dict(cache=False, show_progress=False, max_tokens_per_batch=args.max_tokens)
    encoder = Encoder(cfg, instructions={}, encode=EncodeConfig(**base_settings))
    model = encoder.model
    seqs = workload(args.texts, median=MEDIANS[args.workload])
    lengths = [len(s) for s in seqs]
    what = (f"device: {device_name(device)} (torch {torch.__version__}); random Mistral '{args.shape}' {dtype}, built in "
            f"{time.perf_counter() - built:.1f} s; workload {args.workload}: {len(seqs)} texts, {sum(lengths)} tokens "
            f"(median {int(np.median(lengths))}, max {max(lengths)})")
    print(what, flush=True)
    warm = workload(64, seed=1)
    padded_path(model, warm, list(range(64)), device)
    evalkit_path(encoder, warm)
    sorted_order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    card_n = min(args.card_texts or len(seqs), len(seqs))
    paths = [] if args.no_baselines else [
        Timed("mteb (sorted, batch 32, padded)", lambda: padded_path(model, seqs, sorted_order, device)),
        Timed(f"card order (batch 32, padded{', first %d texts' % card_n if card_n < len(seqs) else ''})",
              lambda: padded_path(model, seqs[:card_n], list(range(card_n)), device))]
    for label, settings in [("auto", {})] + [parse_variant(v) for v in args.variant]:
        config = EncodeConfig(**{**base_settings, **settings})
        variant = encoder.fresh(encode=config)  # the same loaded weights under these settings

        def prepare(config=config, variant=variant):
            before = variant.stats.compile_seconds
            start = time.perf_counter()
            if config.compile or config.varlen_kernel == "flex":  # compiles: a full untimed pass first
                evalkit_path(variant, seqs)
            else:
                evalkit_path(variant, warm)
            compiled = variant.stats.compile_seconds - before
            return (f"ran as {variant.stats.packing}" + (f"; compile {compiled:.0f} s, untimed pass "
                                                         f"{time.perf_counter() - start:.0f} s" if compiled else ""))

        def run(variant=variant):
            return evalkit_path(variant, seqs)

        paths.append(Timed(f"evalkit ({label})", run, prepare))
    return paths, seqs, what


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """English-like texts of common words, lengths log-normal (median 60 words): when no corpus is given."""
    words = ("the of and to in is was for that with as on by at from this which are be it an or were has have "
             "not but their its also protein cells study patients results data model time cancer gene found "
             "effect increase analysis expression disease high levels response clinical role function").split()
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.exp(rng.normal(np.log(60), 0.6, n)), 3, 400).astype(int)
    return [" ".join(rng.choice(words, int(k))) for k in lengths]


def st_paths(args, device) -> tuple[list[Timed], list[str], str, object]:
    """sentence-transformers' encode against evalkit on the same folder and texts (encoder-only models)."""
    from sentence_transformers import SentenceTransformer

    from benchmarks.random_models import MINILM, st_folder
    from evalkit.config import load_model_config
    from evalkit.encoding import calibrate
    from evalkit.encoding.encoder import Encoder
    from evalkit.encoding.model import resolve_path

    if args.st == "minilm":
        folder = Path(resolve_path(MINILM))
    else:
        folder = st_folder(Path(tempfile.gettempdir()) / f"evalkit-bench-{args.st}", args.st.split("-")[1], "base")
    if args.texts_file:
        rows = [json.loads(line) for line in open(args.texts_file, encoding="utf-8")][:args.texts]
        texts = [f"{r.get('title', '')} {r['text']}".strip() for r in rows]
    else:
        texts = synthetic_texts(args.texts)
    st = SentenceTransformer(str(folder), device=str(device))
    cfg = replace(load_model_config("minilm", name_or_path=str(folder), device=str(device),
                                    max_length=st.max_seq_length), name=f"bench/{args.st}")
    calibrate.CALIBRATE_MIN_TOKENS = 0  # measure in this run, whatever the number of texts
    os.environ["EVALKIT_CACHE"] = tempfile.mkdtemp(prefix="evalkit-bench-cache-")  # calibrate afresh, in this run
    variants = {"calibrated": None} | ({f"max_tokens_per_batch={args.max_tokens}": args.max_tokens}
                                       if args.max_tokens else {})
    encoders = {k: Encoder(cfg, instructions={}, encode=EncodeConfig(cache=False, show_progress=False,
                                                                     max_tokens_per_batch=v))
                for k, v in variants.items()}
    # the folder read as its authors defined it (model=<folder>: modules.json, pooling, Normalize), no evalkit YAML
    from evalkit.encoding.st_folder import folder_model_config

    from_folder = replace(folder_model_config(str(folder)), device=str(device), name=f"bench/{args.st}-folder")
    encoders["model=<folder>"] = Encoder(from_folder, instructions={}, encode=EncodeConfig(cache=False,
                                                                                             show_progress=False))
    encoder = next(iter(encoders.values()))
    lengths = [len(ids) for ids in encoder.tokenize(texts)]
    what = (f"device: {device_name(device)} (torch {torch.__version__}, sentence-transformers "
            f"{__import__('sentence_transformers').__version__}); {args.st} ({folder.name}, attention "
            f"{encoder.stats.attn_implementation}); {len(texts)} texts, {sum(lengths)} tokens "
            f"(median {int(np.median(lengths))}, max {max(lengths)})")
    print(what, flush=True)
    st.encode(texts[:64], batch_size=32)
    paths = [Timed("sentence-transformers encode (batch 32)",
                   lambda: (torch.from_numpy(st.encode(texts, batch_size=32, convert_to_numpy=True)), None))]
    for name, enc in encoders.items():
        def prepare(enc=enc):
            enc.embed(texts)  # calibrates (once) and warms up
            return f"{enc.stats.max_tokens_per_batch} tokens per batch: {enc.stats.budget_reason}"

        paths.append(Timed(f"evalkit ({name})", lambda enc=enc: (torch.from_numpy(enc.embed(texts)), None), prepare))
    return paths, texts, what, lengths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    ap.add_argument("--workload", choices=sorted(MEDIANS), default="short")
    ap.add_argument("--dtype", default=None, help="float32 on a CPU, float16 on a GPU by default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--texts", type=int, default=2048)
    ap.add_argument("--card-texts", type=int, default=None, help="texts for the slow model-card path (default all)")
    ap.add_argument("--no-baselines", action="store_true", help="evalkit's paths only (the first is the reference)")
    ap.add_argument("--variant", action="append", default=[], help="PACKING/KERNEL[,key=value...], see above")
    ap.add_argument("--max-tokens", type=int, default=None, help="evalkit's tokens per batch (default: auto)")
    ap.add_argument("--repeat", type=int, default=1, help="timed rounds, paths interleaved; the best counts")
    ap.add_argument("--st", choices=["minilm", "base-mpnet", "base-bert"], default=None,
                    help="encoder-only: evalkit against sentence-transformers' encode")
    ap.add_argument("--texts-file", default=None, help="--st: a BEIR corpus.jsonl to take texts from")
    ap.add_argument("--json", default=None, help="write the table here")
    ap.add_argument("--tokenizer", default=None, help="the Mistral tokenizer.model (default: mistral_common's)")
    args = ap.parse_args(argv)

    device = pick_device(args.device)
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start"
    if args.st:
        paths, texts, what, lengths = st_paths(args, device)
        count = lambda n: sum(lengths[:n])  # noqa: E731
    else:
        dtype = args.dtype or ("float16" if device.type == "cuda" else "float32")
        paths, seqs, what = decoder_paths(args, device, dtype)
        count = lambda n: sum(len(s) for s in seqs[:n])  # noqa: E731
    time_paths(paths, device, args.repeat)
    report(paths, count, {"description": f"{what}; best of {args.repeat} interleaved rounds; {load}",
                          "argv": sys.argv[1:]}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
