"""torchrun with per-rank caches (per-node caches on a cluster) where one rank's is warm: scores equal one process's.

Before rank 0 decided for every rank, a cold rank 0 and a warm rank 1 split different work lists, and the rows
neither computed were scored as whatever memory held."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_distributed import RANKING, evalkit_cmd, run_ok, scores

pytestmark = pytest.mark.integration

PER_RANK = "${oc.env:RANK}"


def ranking(results: Path) -> dict:
    main, _ = scores(results)
    return {k: v for k, v in main.items() if k.startswith(RANKING)}


def rows(shard: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(shard), framework="pt") as fh:
        return fh.get_slice("keys").get_shape()[0]


def test_per_rank_caches_with_one_warm_score_like_one_process(tmp_path, scifact_300):
    data = scifact_300
    caches = tmp_path / "x"
    # one process, caching into rank 1's folder: rank 1 starts warm for everything
    run_ok(evalkit_cmd(1, data, tmp_path / "one", f"encode.cache_dir={caches}/1"), tmp_path / "root")
    expected = ranking(tmp_path / "one")
    assert len(expected) == 35
    # rank 0 gets the queries' shard only (each encode call writes its own): for the queries rank 0 is warm and
    # serves rank 1 what it read, for the documents rank 0 is cold while rank 1 is warm
    shards = sorted((caches / "1").rglob("*.safetensors"), key=rows)
    assert len(shards) == 2
    model_folder = shards[0].parent.parent.relative_to(caches / "1")
    (caches / "0" / model_folder / "shards").mkdir(parents=True)
    shutil.copy2(shards[0], caches / "0" / model_folder / "shards" / shards[0].name)
    shutil.copy2(caches / "1" / model_folder / "model.json", caches / "0" / model_folder / "model.json")
    run_ok(evalkit_cmd(2, data, tmp_path / "two", f"encode.cache_dir={caches}/{PER_RANK}"), tmp_path / "root")
    assert ranking(tmp_path / "two") == expected
    _, record = scores(tmp_path / "two")
    assert record["world_size"] == 2
    assert record["encode"]["cache_hits"] == 40  # the queries, from rank 0's cache; the documents were encoded
