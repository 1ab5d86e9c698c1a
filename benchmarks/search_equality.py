"""evalkit's bounded-memory search against mteb's own, on a real BEIR folder, same embeddings.

    python benchmarks/search_equality.py [--data ../shared/data/beir/scifact] [--model minilm]

Runs the task twice through mteb.evaluate: first with the plain encoder (mteb's
SearchEncoderWrapper: 50k-document chunks, a Python heap per query), then with
evalkit.search.ExactSearch. The embedding cache is on, so the second run reads the first run's
embeddings and only the search differs. Prints both runs' retrieval metrics, the largest
difference, and the wall time of each; exits 1 if nDCG@10 differs by more than 1e-6.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "beir" / "scifact"))
    ap.add_argument("--task", default="scifact")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--cache-dir", default=None, help="embedding cache (default: a temporary folder)")
    args = ap.parse_args(argv)

    import mteb

    from evalkit.config import EncodeConfig
    from evalkit.beir_folder import attach_to_task, read_beir_folder
    from evalkit.encoding.encoder import load_encoder
    from evalkit.search import ExactSearch
    from evalkit.tasks import get_mteb_task, get_task_spec

    spec = get_task_spec(args.task)
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="evalkit-search-")
    encoder = load_encoder(args.model, instructions={spec.mteb_task: spec},
                           encode=EncodeConfig(cache=True, cache_dir=cache_dir, show_progress=False))
    scores, seconds = {}, {}
    for name, model in (("mteb", encoder), ("evalkit", ExactSearch(encoder))):
        task = get_mteb_task(spec)
        attach_to_task(task, read_beir_folder(args.data, spec.split), spec.split, spec.hf_subset)
        start = time.perf_counter()
        result = mteb.evaluate(model, task, cache=None, overwrite_strategy="always", show_progress_bar=False,
                               encode_kwargs={"batch_size": 32})
        seconds[name] = time.perf_counter() - start
        scores[name] = result.task_results[0].scores[spec.split][0]
        print(f"{name}: {spec.metric} = {scores[name][spec.metric]:.6f} ({seconds[name]:.1f} s, "
              f"cache hits so far {encoder.stats.cache_hits})", flush=True)
    keys = [k for k, v in scores["mteb"].items() if isinstance(v, float) and "_at_" in k]
    worst = max(keys, key=lambda k: abs(scores["mteb"][k] - scores["evalkit"][k]))
    gap = abs(scores["mteb"][worst] - scores["evalkit"][worst])
    print(f"largest difference over {len(keys)} metrics: {worst} {gap:.2e}")
    ndcg_gap = abs(scores["mteb"]["ndcg_at_10"] - scores["evalkit"]["ndcg_at_10"])
    print(f"ndcg_at_10: mteb {scores['mteb']['ndcg_at_10']:.6f}, evalkit {scores['evalkit']['ndcg_at_10']:.6f}, "
          f"difference {ndcg_gap:.2e}")
    return 0 if ndcg_gap <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
