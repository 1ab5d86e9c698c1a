"""What evalkit reads, writes and deletes is what it says: local data from the bytes on disk, a result folder
written as one unit under a lock, only its own cache folders deleted, and each failure one line before the work."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------------------------
# a local dataset file is read from its bytes, whatever its mtime


def _sts_rows(offset: float) -> list[dict]:
    return [{"sentence1": f"a cat sits {i}", "sentence2": f"a cat is sitting {i}", "score": (i + offset) % 5}
            for i in range(10)]


def _write_split(path, rows) -> None:
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        Dataset.from_list(rows).to_parquet(str(path))


@pytest.mark.unit
@pytest.mark.parametrize("name", ["test.jsonl", "test.parquet"])
def test_a_file_replaced_with_the_same_mtime_is_read_from_its_new_bytes(tmp_path, monkeypatch, name):
    """`cp -p`, `rsync -a` and tar keep mtimes; the datasets library's cache is keyed by path and mtime."""
    import datasets

    from evalkit.mteb_folder import load_mteb_folder, task_data_fingerprint
    from evalkit.tasks import get_mteb_task, get_task_spec

    shared = tmp_path / "hf-datasets-cache"  # stands in for ~/.cache/huggingface/datasets
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", shared)
    path = tmp_path / "sts" / name
    old, new = _sts_rows(0), _sts_rows(1.5)
    _write_split(path, old)
    stamp = os.stat(path)

    def load():
        task = get_mteb_task(get_task_spec("STSBenchmark"), all_subsets=True)
        load_mteb_folder(task, path.parent)
        return task.dataset["test"].to_list(), task_data_fingerprint(task)

    rows_old, print_old = load()
    assert rows_old == old
    _write_split(path, new)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as `cp -p` leaves it
    rows_new, print_new = load()
    assert rows_new == new and print_new != print_old
    assert not shared.exists() or not any(shared.rglob("*.arrow"))  # the shared cache holds no copy to go stale


# ---------------------------------------------------------------------------------------------------------------
# a result folder is one run's: locked from the check to the last write, its record and scores checked together


def _config(results, data, **kw):
    from evalkit.config import EncodeConfig, RunConfig, load_model_config
    from evalkit.tasks import get_task_spec

    return RunConfig(task=get_task_spec("scifact"), model=load_model_config("tiny_mistral"), data_dir=str(data),
                     results_dir=str(results), encode=EncodeConfig(cache=False, show_progress=False), **kw)


@pytest.fixture
def finished_run(small_beir, tmp_path):
    """A real finished run (tiny model, eight documents): (config, result path)."""
    from evalkit.runner import run

    cfg = _config(tmp_path / "r", small_beir)
    summary = run(cfg)
    assert not summary.skipped and summary.path.is_file()
    return cfg, summary.path


@pytest.mark.unit
def test_a_record_and_result_of_two_runs_are_not_taken_as_finished(finished_run):
    """Two runs finishing together used to pair one run's record with the other's scores; a re-run skipped it."""
    from evalkit import EvalkitError
    from evalkit.results import pair_problem, record_path
    from evalkit.runner import run

    cfg, path = finished_run
    assert pair_problem(path) is None
    assert run(cfg).skipped  # one run's pair: done
    result = json.loads(path.read_text())
    entry = result["scores"]["test"][0]
    entry["ndcg_at_10"], entry["main_score"] = entry["ndcg_at_10"] / 2, entry["main_score"] / 2  # the other run's
    path.write_text(json.dumps(result))
    with pytest.raises(EvalkitError, match="is not one run's result: its scores are not those its run record"):
        run(cfg)
    record = json.loads(record_path(path).read_text())
    del record["scores_sha256"]  # a record from before the digest: its headline score is compared
    record_path(path).write_text(json.dumps(record))
    assert "headline score" in pair_problem(path)
    cfg.overwrite = True
    assert not run(cfg).skipped and pair_problem(path) is None  # overwrite computes the pair again


@pytest.mark.unit
def test_a_second_run_to_a_locked_result_path_waits_and_never_replaces_another_experiment(finished_run, tmp_path):
    """Two experiments resolving to one result path at once: the second used to run and replace the first."""
    import threading

    from evalkit import EvalkitError
    from evalkit.results import record_path, result_lock
    from evalkit.runner import run

    cfg, done = finished_run
    other = tmp_path / "other"  # the first experiment's files, about to land at the same path
    shutil.copytree(done.parent, other)
    record = json.loads((other / "evalkit" / record_path(done).name).read_text())
    record["identity"] = {**record["identity"], "weights": "sha256:another-checkpoint"}
    (other / "evalkit" / record_path(done).name).write_text(json.dumps(record))
    shutil.rmtree(done.parent.parent)  # nothing at the path yet
    outcome = {}

    def second():
        try:
            outcome["summary"] = run(cfg)
        except EvalkitError as exc:
            outcome["error"] = str(exc)

    with result_lock(done):  # the first experiment is running
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(5)
        assert thread.is_alive() and not done.exists()  # the second waits; writes nothing
        shutil.copytree(other, done.parent, dirs_exist_ok=True)  # the first writes its result
    thread.join(120)
    assert "holds another experiment" in outcome.get("error", ""), outcome
    assert json.loads(record_path(done).read_text())["identity"] == record["identity"]  # the first stays
    assert not list(done.parent.rglob("*.lock"))


@pytest.mark.unit
def test_a_run_that_fails_leaves_no_lock_or_folder_behind(small_beir, tmp_path, monkeypatch):
    import evalkit.runner
    from evalkit import EvalkitError
    from evalkit.runner import run

    def broken(*args, **kwargs):
        raise EvalkitError("the model cannot load")

    monkeypatch.setattr(evalkit.runner, "Encoder", broken)
    with pytest.raises(EvalkitError, match="cannot load"):
        run(_config(tmp_path / "r", small_beir))
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------------------------
# fail before the work, in one line: a full disk, a read-only cache root, a damaged tokenizer folder, Ctrl-C


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), so a full disk raises what a full disk raises."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here ({proc.stderr.strip() or proc.returncode}): needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder) -> None:
    """Write into `folder` until the disk is full."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.mark.integration
def test_a_real_full_disk_on_the_cache_is_one_line_and_leaves_no_shard(small_disk):
    """safetensors raises its own SafetensorError (not an OSError) on a full disk."""
    from evalkit import EvalkitError

    cache = EmbeddingCache(small_disk / "cache", {"name": "m"})
    with pytest.raises(EvalkitError, match=r"embedding cache .* cannot be written .*No space left on device"):
        cache.put([text_key(str(i)) for i in range(100)], torch.ones(100, 4000))
    assert not [p for p in cache.shards.iterdir()]


@pytest.mark.integration
def test_a_full_disk_fails_before_the_model_loads(small_disk, small_beir, monkeypatch):
    import evalkit.encoding.encoder
    import evalkit.runner
    from evalkit import EvalkitError
    from evalkit.encoding.cache import check_cache_writable
    from evalkit.runner import run

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(evalkit.runner, "Encoder", no_model)
    _fill(small_disk)
    with pytest.raises(EvalkitError, match=r"results_dir .* is not writable: No space left on device"):
        run(_config(small_disk / "r", small_beir))
    with pytest.raises(EvalkitError, match=r"embedding cache .* cannot be written \(No space left on device"):
        check_cache_writable(small_disk / "cache")


@pytest.mark.integration
def test_a_disk_that_fills_during_the_run_is_one_line_and_leaves_no_result(small_disk, small_beir, monkeypatch):
    import evalkit.runner
    from evalkit import EvalkitError
    from evalkit.runner import run

    write = evalkit.runner.write_result

    def fill_then_write(*args, **kwargs):
        _fill(small_disk)
        return write(*args, **kwargs)

    monkeypatch.setattr(evalkit.runner, "write_result", fill_then_write)
    with pytest.raises(EvalkitError, match=r"cannot write the result .*No space left on device"):
        run(_config(small_disk / "r", small_beir))
    left = [p for p in (small_disk / "r").rglob("*") if p.is_file()]
    assert not [p for p in left if p.suffix in (".json", ".tmp", ".lock")], left


@pytest.mark.unit
def test_a_truncated_tokenizer_file_in_the_cache_is_rebuilt(tmp_path, monkeypatch):
    from evalkit.config import load_model_config
    from evalkit.encoding.model import load_tokenizer, resolve_path, sentencepiece_folder

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    cfg = load_model_config("tiny_mistral")
    source = Path(resolve_path(cfg.tokenizer))
    folder = sentencepiece_folder(source)
    expected = load_tokenizer(cfg)("a cat sits on the mat")["input_ids"]
    model = folder / "tokenizer.model"
    model.write_bytes(source.read_bytes()[: len(source.read_bytes()) // 2])  # a copy cut short
    assert sentencepiece_folder(source) == folder
    assert model.read_bytes() == source.read_bytes()
    assert load_tokenizer(cfg)("a cat sits on the mat")["input_ids"] == expected


@pytest.mark.unit
def test_a_read_only_cache_root_with_the_cache_off_runs_and_scores_the_same(small_beir, tmp_path, monkeypatch):
    from evalkit.runner import run

    usual = run(_config(tmp_path / "a", small_beir))
    monkeypatch.setenv("EVALKIT_CACHE", "/proc/evalkit-cache")  # a folder nobody can create, root included
    unwritable = run(_config(tmp_path / "b", small_beir))
    assert unwritable.score == usual.score
    assert unwritable.path.relative_to(tmp_path / "b") == usual.path.relative_to(tmp_path / "a")


SIGINT_DURING_EVALUATION = """
import os, signal, sys, time
import mteb

def interrupted(*args, **kwargs):  # Ctrl-C while mteb evaluates
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)

mteb.evaluate = interrupted
from evalkit.__main__ import main
sys.argv = ["evalkit", *sys.argv[1:]]
main()
"""


@pytest.mark.integration
def test_ctrl_c_is_one_line_and_leaves_no_result(small_beir, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    proc = subprocess.run([sys.executable, "-c", SIGINT_DURING_EVALUATION, "task=scifact", "model=tiny_mistral",
                           f"data_dir={small_beir}", f"results_dir={tmp_path}/r", "encode.cache=false"],
                          cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("evalkit: ")] == [
        "evalkit: interrupted; the task that was running wrote no result (finished ones stay)"]
    assert not (tmp_path / "r").exists()  # no result, no lock, no folder
