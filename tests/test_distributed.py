"""torchrun on CPU: 2 gloo ranks on a 300-document SciFact slice score like one process; a killed run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.integration

RANKING = ("ndcg_at_", "map_at_", "recall_at_", "precision_at_", "mrr_at_")


def evalkit_cmd(nproc: int, data: Path, results: Path, *extra: str) -> list[str]:
    # --standalone: the rendezvous store binds a free port itself (a fixed or pid-derived port can be taken)
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)
            ] if nproc > 1 else [sys.executable]
    return [*head, "-m", "evalkit", "task=scifact", "model=tiny_mistral", f"data_dir={data}",
            f"results_dir={results}", "encode.show_progress=false", *extra]


def run_ok(cmd: list[str], cache: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EVALKIT_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def scores(results: Path) -> tuple[dict, dict]:
    """The one SciFact result under `results` (in `seed0/`, or an experiment folder for a slice of the data)."""
    [path] = (results / "evalkit__tiny-random-mistral").glob("*/SciFact.json")
    folder = path.parent
    return (json.loads((folder / "SciFact.json").read_text())["scores"]["test"][0],
            json.loads((folder / "evalkit" / "SciFact.run.json").read_text()))


def test_two_gloo_ranks_score_like_one_process(tmp_path, scifact_300):
    data = scifact_300
    run_ok(evalkit_cmd(1, data, tmp_path / "one"), tmp_path / "cache1")
    run_ok(evalkit_cmd(2, data, tmp_path / "two"), tmp_path / "cache2")
    (one, record_one), (two, record_two) = scores(tmp_path / "one"), scores(tmp_path / "two")
    ranking = [k for k in one if k.startswith(RANKING)]
    assert len(ranking) == 35 and {k: one[k] for k in ranking} == {k: two[k] for k in ranking}
    assert record_two["world_size"] == 2
    # each rank encoded about half of the texts (rank 0's record counts its own tokens)
    assert 0.4 < record_two["encode"]["tokens"] / record_one["encode"]["tokens"] < 0.6
    shards = list((tmp_path / "cache2").rglob("*.safetensors"))
    assert len({p.name.split("-")[1] for p in shards}) == 2  # both ranks wrote shards (name holds the pid)


def stored_texts(cache: Path) -> int:
    from safetensors import safe_open

    keys = set()
    for path in cache.rglob("*.safetensors"):
        with safe_open(str(path), framework="numpy") as fh:
            keys.update(bytes(row) for row in fh.get_tensor("keys"))
    return len(keys)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and every process under it (its workers run in sessions of their own, so killing
    torchrun's process group alone leaves them writing shards), and wait until all are gone."""
    def children(pid: int) -> list[int]:
        try:
            found = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []
        return found + [g for c in found for g in children(c)]

    tree = children(proc.pid)
    for pid in [proc.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()

    def alive(pid: int) -> bool:  # a zombie (state Z) no longer writes anything
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.time() + 30
    while any(alive(pid) for pid in tree) and time.time() < deadline:
        time.sleep(0.1)


def test_a_killed_distributed_run_resumes_from_the_ranks_shards(tmp_path, scifact_300):
    data = scifact_300
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EVALKIT_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    # small batches and shards: many of each, so the kill lands mid-run even on a loaded machine
    cmd = evalkit_cmd(2, data, tmp_path / "killed", "encode.cache_shard_texts=8", "encode.max_tokens_per_batch=512")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600  # guards against a hang, sized for a loaded machine
    try:
        while time.time() < deadline:
            writers = {p.name.split("-")[1] for p in cache.rglob("*.safetensors")}
            if len(writers) == 2 and len(list(cache.rglob("*.safetensors"))) >= 4:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("no shards from both ranks within 600 s")
    finally:
        kill_tree(proc)
    assert not list((tmp_path / "killed").rglob("SciFact.json"))  # killed before any result was written
    written = stored_texts(cache)
    run_ok(evalkit_cmd(1, data, tmp_path / "resumed"), cache)
    _, record = scores(tmp_path / "resumed")
    assert record["encode"]["cache_hits"] >= written > 0  # both ranks' finished shards were reused
    assert record["encode"]["cache_hits"] < record["encode"]["texts"]  # and the rest was encoded
