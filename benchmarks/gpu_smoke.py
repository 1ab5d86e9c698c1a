"""GPU smoke test of the encoder: packed and padded embeddings agree and are finite.

    python benchmarks/gpu_smoke.py [--shape 7b] [--tokenizer PATH] [--device cuda]

1. tiny_mistral: packed (sdpa) against padded with mask in float32 (cosine >= 0.9999), and every
   float16 path against that float32 reference (>= 0.999).
2. A random Mistral of `--shape`, drawn in float32: packed against padded with mask in float32
   (>= 0.9999). Then the same weights in float16: the mteb-style path (padded with mask) is the
   control. Deep random networks lose more to float16 rounding than trained ones (the first H200
   run: 0.9867 for every float16 path, the control's own loss), so each evalkit float16 path must
   reach >= 0.999 against the float16 control and be no further from float32 than the control is.
Prints one line per check and exits non-zero when any fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.encode_throughput import model_config, workload  # noqa: E402
from evalkit.config import EncodeConfig, load_model_config  # noqa: E402
from evalkit.encoding.encoder import Encoder  # noqa: E402

failures: list[str] = []


def check(name: str, cosine: float, finite: bool, floor: float) -> None:
    ok = finite and cosine >= floor
    print(f"{'ok  ' if ok else 'FAIL'} {name}: min cosine {cosine:.6f} (floor {floor}), finite={finite}", flush=True)
    if not ok:
        failures.append(name)


def embed(encoder: Encoder, seqs, packing: str, kernel: str = "auto") -> torch.Tensor:
    encoder = encoder.fresh(encode=EncodeConfig(cache=False, show_progress=False, packing=packing,
                                                varlen_kernel=kernel))
    out = torch.from_numpy(encoder.embed_ids(seqs))
    print(f"     {packing}/{kernel} ran as {encoder.stats.packing}", flush=True)
    return out


def compare(name, out, reference, floor):
    check(name, F.cosine_similarity(out, reference).min().item(), bool(torch.isfinite(out).all()), floor)


FLOAT16_PATHS = [("packed", "auto"), ("packed", "sdpa"), ("padded", "auto")]


def float16_paths(encoder: Encoder, seqs, name: str, reference32, control=None) -> None:
    """Every float16 path against the float32 reference (and against the float16 control when given)."""
    encoder.cast(torch.float16)
    for packing, kernel in FLOAT16_PATHS:
        try:
            out = embed(encoder, seqs, packing, kernel)
        except Exception as exc:  # report and go on
            print(f"FAIL {packing}/{kernel}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", flush=True)
            failures.append(f"{name} {packing}/{kernel}")
            continue
        if control is None:
            compare(f"{name} float16 {packing}/{kernel} vs float32 padded+mask", out, reference32, 0.999)
            continue
        compare(f"{name} float16 {packing}/{kernel} vs float16 padded+mask", out, control, 0.999)
        floor = F.cosine_similarity(control, reference32).min().item() - 1e-3
        compare(f"{name} float16 {packing}/{kernel} vs float32 (control's own: {floor + 1e-3:.6f})", out,
                reference32, floor)


def masked_reference(encoder: Encoder, seqs) -> torch.Tensor:
    encoder.cfg.padding_side = "left"  # forces the attention mask in the padded path
    out = embed(encoder, seqs, "padded")
    encoder.cfg.padding_side = "right"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="7b")
    ap.add_argument("--texts", type=int, default=48)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tokenizer", default=None)
    args = ap.parse_args(argv)
    tok = {"tokenizer": args.tokenizer} if args.tokenizer else {}
    seqs = [s[:1024] for s in workload(args.texts, seed=2)]  # keeps the float32 reference quick

    tiny = Encoder(load_model_config("tiny_mistral", device=args.device, **tok), instructions={})
    reference = masked_reference(tiny, seqs)
    compare("tiny float32 packed/sdpa vs padded+mask", embed(tiny, seqs, "packed", "sdpa"), reference, 0.9999)
    float16_paths(tiny, seqs, "tiny", reference)
    del tiny

    start = time.perf_counter()
    cfg = model_config(args.shape, "float32", args.device)
    if args.tokenizer:
        cfg.tokenizer = args.tokenizer
    big = Encoder(cfg, instructions={})
    print(f"     random Mistral '{args.shape}' float32 built in {time.perf_counter() - start:.1f} s", flush=True)
    reference = masked_reference(big, seqs)
    compare(f"{args.shape} float32 packed/sdpa vs float32 padded+mask", embed(big, seqs, "packed", "sdpa"),
            reference, 0.9999)
    big.cast(torch.float16)
    control = masked_reference(big, seqs)
    float16_paths(big, seqs, args.shape, reference, control)
    print("smoke:", "all ok" if not failures else f"{len(failures)} failed: {', '.join(failures)}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
