"""What evalkit reads, writes and deletes is what it says: local data from the bytes on disk, a result folder
written as one unit under a lock, only its own cache folders deleted, and each failure one line before the work."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from evalkit.encoding.cache import EmbeddingCache, text_key
from evalkit.encoding.cache_cli import main as cache_main
from evalkit.encoding.shard import evict
from evalkit.files import CACHE_MARKER

# ---------------------------------------------------------------------------------------------------------------
# `cache clear` and eviction delete only what evalkit wrote


def _project(parent):
    """A user's folder that looks like a cache to a careless glob: `parent/myproject/shards/`."""
    project = parent / "myproject"
    (project / "shards").mkdir(parents=True)
    (project / "shards" / "model.safetensors").write_bytes(b"user data")
    (project / "train.py").write_text("print('my code')\n")
    return project


@pytest.mark.unit
def test_cache_clear_refuses_a_folder_evalkit_did_not_write(tmp_path, capsys):
    project = _project(tmp_path)
    assert cache_main(["clear", "--dir", str(tmp_path)]) != 0
    assert (project / "train.py").is_file() and (project / "shards" / "model.safetensors").is_file()
    assert "not an evalkit embedding cache" in capsys.readouterr().err


@pytest.mark.unit
def test_cache_clear_removes_only_marked_model_folders_and_names_them_first(tmp_path, capsys):
    root = tmp_path / "cache"
    cache = EmbeddingCache(root, {"name": "org/model"})
    cache.put([text_key("a")], torch.ones(1, 4))
    cache.close()
    assert (root / CACHE_MARKER).is_file() and (cache.dir / CACHE_MARKER).is_file()
    stranger = _project(root)  # a user's folder that happens to sit inside the cache root
    assert cache_main(["clear", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"removing {cache.dir}" in out and "org/model" in out
    assert not cache.dir.exists()
    assert (stranger / "train.py").is_file() and (stranger / "shards" / "model.safetensors").is_file()


@pytest.mark.unit
def test_eviction_never_deletes_files_of_a_folder_evalkit_did_not_create(tmp_path):
    stranger = _project(tmp_path)
    cache = EmbeddingCache(tmp_path, {"name": "m"})
    cache.put([text_key("a")], torch.ones(1, 4))
    assert evict(tmp_path, 0) == 1
    assert (stranger / "shards" / "model.safetensors").is_file()
