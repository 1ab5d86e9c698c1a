"""Encoding throughput: evalkit's encoder against the mteb-style path, side by side in one run.

The workload (issue 5): texts of random token ids whose lengths are log-normal with median 220
tokens (sigma 0.6), clipped to [8, 4095], plus EOS; a randomly initialised Mistral. Paths:

  card        model-card order: batches of 32 in input order, padded to the longest, with mask
  mteb        sorted by length, batches of 32, padded, with mask (mteb / sentence-transformers)
  evalkit     Encoder.embed: batches cut by tokens, packed (or padded) as configured, no cache
  + variants  `--variant packed/sdpa` etc.: evalkit with other packing / kernel settings

Each path is timed after a warm-up batch; printed: real tokens/s, ratio to the mteb path,
padding fraction, peak memory, and the worst cosine between each path's and the mteb path's
embeddings. `--json` writes the table for the record.

    python benchmarks/encode_throughput.py                       # small Mistral on the CPU
    python benchmarks/encode_throughput.py --shape 7b --dtype float16 --texts 2048   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from evalkit.config import EncodeConfig, ModelConfig, RandomInit  # noqa: E402
from evalkit.encoding.model import pad_batch, pick_device  # noqa: E402
from evalkit.encoding.pooling import pool  # noqa: E402

SHAPES = {
    "small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=2),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "7b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8),
}


def workload(n: int, seed: int = 0, vocab: int = 32000, bos: int = 1, eos: int = 2) -> list[list[int]]:
    """n token id lists: BOS + random ids + EOS, lengths log-normal(median 220, sigma 0.6) in [8, 4095] + EOS."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(np.exp(rng.normal(np.log(220), 0.6, n))), 8, 4095).astype(int)
    return [[bos] + rng.integers(3, vocab, int(length) - 1).tolist() + [eos] for length in lengths]


def model_config(shape: str, dtype: str, device: str, attn: str = "sdpa") -> ModelConfig:
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


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return result, seconds, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    ap.add_argument("--dtype", default=None, help="float32 on a CPU, float16 on a GPU by default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--texts", type=int, default=2048)
    ap.add_argument("--card-texts", type=int, default=None, help="texts for the slow model-card path (default all)")
    ap.add_argument("--variant", action="append", default=[], help="packing/kernel, e.g. padded/auto or packed/flex")
    ap.add_argument("--max-tokens", type=int, default=None, help="evalkit's tokens per batch (default: auto)")
    ap.add_argument("--json", default=None, help="write the table here")
    ap.add_argument("--tokenizer", default=None, help="the Mistral tokenizer.model (default: mistral_common's)")
    args = ap.parse_args(argv)

    from evalkit.encoding.encoder import Encoder

    device = pick_device(args.device)
    dtype = args.dtype or ("float16" if device.type == "cuda" else "float32")
    cfg = model_config(args.shape, dtype, str(device))
    if args.tokenizer:
        cfg.tokenizer = args.tokenizer
    built = time.perf_counter()
    encoder = Encoder(cfg, instructions={}, encode=EncodeConfig(cache=False, show_progress=False,
                                                                max_tokens_per_batch=args.max_tokens))
    model = encoder.model
    seqs = workload(args.texts)
    tokens = sum(len(s) for s in seqs)
    print(f"device: {describe(device)}; model: random Mistral '{args.shape}' {dtype}, built in "
          f"{time.perf_counter() - built:.1f} s; {len(seqs)} texts, {tokens} tokens "
          f"(median {int(np.median([len(s) for s in seqs]))}, max {max(len(s) for s in seqs)})", flush=True)

    warm = workload(64, seed=1)
    padded_path(model, warm, list(range(64)), device)
    evalkit_path(encoder, warm)
    sorted_order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    card_n = min(args.card_texts or len(seqs), len(seqs))
    paths = {  # name -> (untimed preparation or None, timed run)
        "mteb (sorted, batch 32, padded)": (None, lambda: padded_path(model, seqs, sorted_order, device)),
        f"card order (batch 32, padded{', first %d texts' % card_n if card_n < len(seqs) else ''})":
            (None, lambda: padded_path(model, seqs[:card_n], list(range(card_n)), device)),
    }
    variants = [("auto", "auto")] + [tuple(v.split("/")) for v in args.variant]
    for packing, kernel in variants:
        def configure(packing=packing, kernel=kernel):
            encoder.encode_cfg = EncodeConfig(cache=False, show_progress=False, packing=packing,
                                              varlen_kernel=kernel, max_tokens_per_batch=args.max_tokens)
            if kernel == "flex":  # compiles once per shape: a full untimed pass first
                evalkit_path(encoder, seqs)
        paths[f"evalkit ({packing}/{kernel})"] = (configure, lambda: evalkit_path(encoder, seqs))

    rows, reference = [], None
    for name, (prepare, fn) in paths.items():
        try:
            if prepare is not None:
                prepare()
            (emb, computed), seconds, peak = timed(fn, device)
        except Exception as exc:  # one failing variant must not hide the others
            print(f"{name}: FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)
            continue
        n = len(emb)
        real = sum(len(s) for s in seqs[:n])
        if reference is None:
            reference = emb
        cosine = F.cosine_similarity(emb.float(), reference[:n].float()).min().item()
        label = name if not name.startswith("evalkit") else f"{name} -> {encoder.stats.packing}"
        row = {"path": label, "texts": n, "tokens_per_s": real / seconds, "seconds": seconds,
               "padding_fraction": 1 - real / computed, "peak_memory_gb": peak / 2**30 if peak else None,
               "min_cosine_vs_mteb": cosine, "finite": bool(torch.isfinite(emb).all())}
        rows.append(row)
        print(f"{label}: {row['tokens_per_s']:,.0f} tok/s, {seconds:.1f} s, padding {row['padding_fraction']:.1%}, "
              f"cos {cosine:.6f}", flush=True)
    base = rows[0]["tokens_per_s"] if rows and rows[0]["path"].startswith("mteb") else None
    print("\n| path | real tokens/s | vs mteb | padding | peak GiB | min cos vs mteb |\n|---|---|---|---|---|---|")
    for row in rows:
        ratio = f"{row['tokens_per_s'] / base:.2f}x" if base else "-"
        peak = f"{row['peak_memory_gb']:.1f}" if row["peak_memory_gb"] else "-"
        print(f"| {row['path']} | {row['tokens_per_s']:,.0f} | {ratio} | {row['padding_fraction']:.1%} | {peak} | "
              f"{row['min_cosine_vs_mteb']:.6f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": describe(device), "shape": args.shape, "dtype": dtype,
                                               "texts": len(seqs), "tokens": tokens, "rows": rows}, indent=1))
    return 0


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"CPU, {torch.get_num_threads()} threads (torch {torch.__version__})"


if __name__ == "__main__":
    sys.exit(main())
