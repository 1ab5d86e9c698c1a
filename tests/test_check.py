"""The gate's plumbing: suite files, score tolerances, baseline files, the CLI's exit codes and JUnit report."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest  # noqa: E402

from evalkit import EvalkitError  # noqa: E402
from evalkit.check import baseline, scores  # noqa: E402
from evalkit.check.__main__ import main  # noqa: E402
from evalkit.check.gate import baseline_path, check  # noqa: E402
from evalkit.check.suite import (GoldenChecks, ScoreChecks, Suite, SuiteTask, data_folder,  # noqa: E402
                                 load_probes, load_suite, suite_names)

REPO = Path(__file__).resolve().parent.parent
TOPICS = ["cats", "rivers", "volcanoes", "chess", "bread", "comets", "violins", "glaciers"]


def write_beir(folder: Path) -> Path:
    """Eight documents, four queries with one relevant document each."""
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": t, "text": f"A note on {t} and nothing else."} for i, t in enumerate(TOPICS)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": f"q{i}", "text": f"Tell me about {t}"} for i, t in enumerate(TOPICS[:4])]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(4)))
    return folder


def score_suite(data_dir: Path, golden: bool = False) -> Suite:
    return Suite(name="t", golden=GoldenChecks(models=["tiny_mistral"]) if golden else None,
                 scores=ScoreChecks(model="tiny_mistral", metrics=["ndcg_at_10", "recall_at_100"],
                                    tasks=[SuiteTask(task="SciFact", data_dir=str(data_dir))]),
                 encode={"batch_size": 4, "show_progress": False})


# -- suite files ---------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_loads_and_has_a_committed_baseline_that_covers_it(name):
    suite = load_suite(name)
    path = baseline_path(suite)
    assert path.is_file(), f"no {path}: run python -m evalkit.check suite={name} --update-baseline"
    assert path.stat().st_size < 200_000
    data = baseline.load(path)
    for model in suite.golden.models:
        assert set(data["golden"][model]["probes"]) == {p.id for p in load_probes(suite.golden.probes)}
    for entry in suite.scores.tasks:
        assert set(scores.task_metrics(suite, entry)) <= set(data["scores"][entry.task]["metrics"])


@pytest.mark.unit
def test_the_e5_smoke_baseline_holds_the_published_scores():
    from evalkit.report.published import E5, load_published

    suite, published = load_suite("e5_mistral_smoke"), load_published(E5)
    recorded = baseline.load(baseline_path(suite))["scores"]
    for entry in suite.scores.tasks:
        for metric, value in recorded[entry.task]["metrics"].items():
            assert 100 * value == pytest.approx(published.score(recorded[entry.task]["mteb_task"], metric), abs=1e-9)


@pytest.mark.unit
@pytest.mark.parametrize("text, message", [
    ("scores: {model: minilm, tasks: [{task: SciFact}], colour: red}", "colour"),
    ("golden: {models: [minilm2]}", "unknown model 'minilm2'; did you mean minilm?"),
    ("scores: {model: minilm, tasks: [{task: SciFakt}]}", "unknown task 'SciFakt'"),
    ("scores: {model: minilm, tasks: [{task: SciFact, tolerance: -1}]}", "tolerance must be >= 0"),
    ("golden: {models: [minilm], min_cosine: 1.5}", "min_cosine must be in (0, 1]"),
    ("golden: {models: [minilm], probes: nope}", "unknown probe set 'nope'"),
    ("encode: {batch_size: 0}\ngolden: {models: [minilm]}", "batch_size"),
    ("description: nothing to check", "needs golden checks, score checks or both"),
])
def test_bad_suites_fail_with_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(EvalkitError, match=None) as info:
        load_suite(str(path))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.unit
def test_a_missing_data_folder_is_one_clear_line():
    with pytest.raises(EvalkitError) as info:
        data_folder(SuiteTask(task="SciFact", data_dir="../nowhere/scifact"), "ci")
    assert "data folder for SciFact does not exist: ../nowhere/scifact" in str(info.value)


# -- score checks --------------------------------------------------------------------------
def fake(metrics: dict[str, float]) -> dict:
    return {"SciFact": {"model": "m", "metrics": metrics}}


@pytest.mark.unit
def test_scores_hold_within_the_tolerance_either_way_and_fail_beyond_it():
    suite = score_suite(Path("unused"))
    base = fake({"ndcg_at_10": 0.50000, "recall_at_100": 0.90000})
    rows = scores.compare(suite, base, fake({"ndcg_at_10": 0.50099, "recall_at_100": 0.89800}))
    ndcg, recall = rows
    assert ndcg.ok and ndcg.cells() == ("SciFact", "ndcg_at_10", "50.000", "50.099", "+0.099", "", "", "±0.1", "ok")
    assert not recall.ok and recall.delta == "-0.200" and recall.note.startswith("tolerance: dropped 0.200 points")
    suite.scores.tasks[0].tolerance = 0.25  # per task
    assert all(r.ok for r in scores.compare(suite, base, fake({"ndcg_at_10": 0.5024, "recall_at_100": 0.898})))


@pytest.mark.unit
def test_a_score_missing_from_the_baseline_fails_and_unrun_scores_are_skipped():
    suite = score_suite(Path("unused"))
    rows = scores.compare(suite, fake({"ndcg_at_10": 0.5}), fake({"ndcg_at_10": 0.5, "recall_at_100": 0.9}))
    assert [r.verdict for r in rows] == ["ok", "FAIL"] and "--update-baseline" in rows[1].note
    assert [r.verdict for r in scores.compare(suite, {}, None)] == ["skipped", "skipped"]


@pytest.mark.integration
def test_scores_end_to_end_record_then_pass_identically(tmp_path):
    suite, path = score_suite(write_beir(tmp_path / "beir")), tmp_path / "b.json"
    first = check(suite, path, results_dir=tmp_path / "r", update=True)
    assert first.updated and first.changes == ["scores SciFact: added"]
    again = check(suite, path, results_dir=tmp_path / "r")
    assert again.ok and [r.delta for r in again.rows] == ["+0.000", "+0.000"]
    assert [r.now for r in again.rows] == [r.baseline for r in again.rows]
    recorded = baseline.load(path)["scores"]["SciFact"]
    assert recorded["model"] == "evalkit/tiny-random-mistral" and recorded["data_dir"] == str(tmp_path / "beir")


@pytest.mark.unit
def test_the_gate_runs_with_strict_instructions(tmp_path, monkeypatch):
    """The gate measures the paper's instructions: mteb's prompts would be an error, never a quiet stand-in."""
    import evalkit.runner

    seen = []

    def stop(cfg):
        seen.append(cfg.strict_instructions)
        raise EvalkitError("stop")

    monkeypatch.setattr(evalkit.runner, "run", stop)
    with pytest.raises(EvalkitError, match="stop"):
        scores.measure(score_suite(write_beir(tmp_path / "beir")), tmp_path / "r", scores.specs_with())
    assert seen == [True]


@pytest.mark.integration
def test_golden_failures_stop_before_the_scores_unless_keep_going(tmp_path, monkeypatch):
    suite, path = score_suite(write_beir(tmp_path / "beir"), golden=True), tmp_path / "b.json"
    check(suite, path, results_dir=tmp_path / "r", update=True, golden_only=True)
    calls, measured = [], {"SciFact": {"metrics": {"ndcg_at_10": 0.5, "recall_at_100": 0.25}}}
    monkeypatch.setattr(scores, "measure", lambda *a, **k: calls.append(1) or measured)
    outcome = check(suite, path, model_overrides={"pooling": "mean"})
    assert not outcome.ok and not calls and {r.verdict for r in outcome.rows if r.task == "SciFact"} == {"skipped"}
    outcome = check(suite, path, model_overrides={"pooling": "mean"}, keep_going=True)
    assert calls == [1]
    assert [r.now for r in outcome.rows if r.task == "SciFact"] == ["50.000", "25.000"]  # the scores were compared


# -- baseline files ------------------------------------------------------------------------
@pytest.mark.unit
def test_baseline_json_keeps_number_lists_on_one_line_and_says_what_changed():
    old = {"golden": {}, "scores": {"SciFact": {"metrics": {"ndcg_at_10": 0.5}}}}
    new = {"golden": {}, "scores": {"SciFact": {"metrics": {"ndcg_at_10": 0.51}}, "NFCorpus": {"metrics": {}}}}
    assert baseline.changes(old, new) == ["scores NFCorpus: added", "scores SciFact ndcg_at_10: 50.000 -> 51.000"]
    assert '"ids": [1,2,3]' in baseline.dumps({"ids": [1, 2, 3]})


@pytest.mark.unit
def test_a_corrupt_baseline_is_one_line(tmp_path):
    path = tmp_path / "b.json"
    path.write_text("{not json")
    with pytest.raises(EvalkitError, match="not a valid baseline file"):
        baseline.load(path)


# -- CLI -----------------------------------------------------------------------------------
@pytest.mark.integration
def test_help_and_list_do_not_import_torch():
    code = "import sys; from evalkit.check.__main__ import main; main(['--list']); assert 'torch' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "ci" in proc.stdout.split() and "e5_mistral_smoke" in proc.stdout.split()


@pytest.mark.unit
@pytest.mark.parametrize("argv, message", [
    (["suite=nope"], "unknown suite 'nope'"), ([], "no suite given"), (["suite=ci", "colour=red"], "unknown key 'colour'"),
])
def test_cli_input_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.integration
def test_cli_records_passes_fails_and_writes_junit(tmp_path, capsys):
    suite = tmp_path / "tiny.yaml"
    suite.write_text("golden: {models: [tiny_mistral]}\n")
    args = [f"suite={suite}", "--baseline", str(tmp_path / "b.json")]
    assert main(args + ["--update-baseline"]) == 0
    assert "golden tiny_mistral: added" in capsys.readouterr().out
    assert main(args + ["--junit", str(tmp_path / "ok.xml")]) == 0
    assert "PASS: 4 checks held" in capsys.readouterr().out
    assert main(args + ["model.dtype=float16", "--junit", str(tmp_path / "fail.xml")]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 1 of 4 checks failed" in out and "param_dtype float32 -> float16" in out
    suite_el = ET.parse(tmp_path / "fail.xml").getroot().find("testsuite")
    assert suite_el.get("tests") == "4" and suite_el.get("failures") == "1"
    failed = [c for c in suite_el.iter("testcase") if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("tiny.golden/tiny_mistral", "setup")]
    assert ET.parse(tmp_path / "ok.xml").getroot().find("testsuite").get("failures") == "0"


@pytest.mark.unit
def test_golden_only_on_a_suite_without_golden_checks_is_an_error_not_a_pass(tmp_path, capsys):
    suite = tmp_path / "scores_only.yaml"
    suite.write_text(f"scores: {{model: tiny_mistral, tasks: [{{task: SciFact, data_dir: {tmp_path}}}]}}\n")
    assert main([f"suite={suite}", "--golden-only", "--baseline", str(tmp_path / "b.json")]) == 2
    out, err = capsys.readouterr()
    assert "PASS" not in out and "has no golden checks: --golden-only would check nothing" in err


@pytest.mark.unit
def test_a_gate_where_no_check_held_fails(tmp_path):
    from evalkit.check.__main__ import report
    from evalkit.check.gate import Outcome

    outcome = Outcome("t", Path("b.json"), scores.compare(score_suite(Path("beir")), {}, None))
    assert [r.verdict for r in outcome.rows] == ["skipped", "skipped"] and not outcome.ok
    text = report(outcome, "baseline b.json: none yet")
    assert "PASS" not in text and "FAIL: no check held (2 skipped" in text
    from evalkit.check import junit

    junit.write(tmp_path / "j.xml", "t", outcome.rows, 0.0)
    suite_el = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert (suite_el.get("failures"), suite_el.get("skipped"), suite_el.get("tests")) == ("1", "2", "3")
