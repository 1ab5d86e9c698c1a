"""The `gpu` tier: the encoder's smoke test on a CUDA device (packed vs padded, float16 vs float32).

Skipped without CUDA (CI has none). On the device machine the same script ran with the 7B shape:
`python benchmarks/gpu_smoke.py --shape 7b` (README, "Fast encoding")."""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_gpu_smoke_tiny_shape():
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO))
    from benchmarks.gpu_smoke import failures, main

    assert main(["--shape", "tiny", "--texts", "16", "--device", "cuda"]) == 0, failures
