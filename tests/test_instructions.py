"""Any mteb task by name, and where its instruction comes from: task.instruction, the task file, mteb's
task prompt, mteb's type default (the last two warned about, refused under strict_instructions)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import mteb
import pytest
from mteb.mocks.mock_tasks import MockSTSTask
from mteb.results.task_result import TaskResult

from evalkit import EvalkitError
from evalkit.instructions import EXPLICIT, MTEB_PROMPT, resolve_instruction
from evalkit.results import record_path
from evalkit.tasks import get_task_spec, resolve_task_name, spec_for_metadata

from test_cli import assert_one_line_error, evalkit

SICK_NL_PROMPT = "Zoek tekst die semantisch vergelijkbaar is met de gegeven tekst."


@pytest.mark.unit
def test_any_mteb_task_gets_a_spec_from_mteb_metadata():
    spec = get_task_spec("sicknlpairclassification")  # any case, like the task files' names
    assert (spec.name, spec.mteb_task, spec.type, spec.split, spec.metric) == (
        "SICKNLPairClassification", "SICKNLPairClassification", "PairClassification", "test", "max_ap")
    assert spec.instruction is None and spec.hf_subset == "default"
    assert get_task_spec("SIB200ClusteringS2S").hf_subset == "eng_Latn"  # the English subset is the headline
    assert get_task_spec("scifact").aliases == ["scifact"]  # a task file still wins


@pytest.mark.unit
def test_unknown_and_non_text_tasks_are_one_line_errors():
    with pytest.raises(EvalkitError, match="unknown task 'SICK-NL-STSS'; did you mean SICK-NL-STS"):
        resolve_task_name("SICK-NL-STSS")
    with pytest.raises(EvalkitError, match="VisualSTS17Eng is a image task; evalkit embeds text only"):
        get_task_spec("VisualSTS17Eng")
    with pytest.raises(EvalkitError, match="does not run mteb's Any2AnyRetrieval tasks"):
        get_task_spec("WebQAT2TRetrieval")


@pytest.mark.unit
def test_resolution_order_and_sources(caplog):
    file_spec = get_task_spec("STSBenchmark")
    with caplog.at_level(logging.WARNING):
        assert resolve_instruction(replace(file_spec, instruction="Find twins")) == (
            replace(file_spec, instruction="Find twins"), EXPLICIT)
        assert resolve_instruction(file_spec) == (file_spec, "conf/tasks/STSBenchmark.yaml")
        assert resolve_instruction(replace(get_task_spec("SICK-NL-STS"), instruction="Vind"))[1] == EXPLICIT
        assert not caplog.records  # neither is warned about
        spec, source = resolve_instruction(get_task_spec("SICKNLPairClassification"))
        assert (spec.instruction, source) == (SICK_NL_PROMPT, MTEB_PROMPT)
        spec, source = resolve_instruction(get_task_spec("SummEvalSummarization.v2"))
        assert source == "mteb default prompt for Summarization"
        assert spec.instruction == "Given a news summary, retrieve other semantically similar summaries."
        spec, source = resolve_instruction(get_task_spec("NanoSciFactRetrieval"))  # a dict prompt: its query side
        assert spec.instruction.startswith("Given a scientific claim") and source == MTEB_PROMPT
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3 and all("\n" not in w and "strict_instructions=true" in w for w in warnings)
    assert warnings[0].startswith("SICKNLPairClassification: no task file gives its instruction; using the mteb task")


@pytest.mark.unit
def test_strict_refuses_mteb_prompts_only():
    with pytest.raises(EvalkitError, match=r"SICKNLPairClassification: .* strict_instructions=true refuses the mteb "
                                           r"task metadata prompt \('Zoek"):
        resolve_instruction(get_task_spec("SICKNLPairClassification"), strict=True)
    with pytest.raises(EvalkitError, match="refuses the mteb default prompt for STS"):
        resolve_instruction(spec_for_metadata(MockSTSTask().metadata), strict=True, meta=MockSTSTask().metadata)
    assert resolve_instruction(get_task_spec("STSBenchmark"), strict=True)[1] == "conf/tasks/STSBenchmark.yaml"
    explicit = replace(get_task_spec("SICK-NL-STS"), instruction="Vind")
    assert resolve_instruction(explicit, strict=True)[1] == EXPLICIT


@pytest.mark.unit
def test_the_encoder_resolves_unmapped_tasks_the_same_way(tiny_encoder):
    meta = MockSTSTask().metadata
    encoder = tiny_encoder.fresh(instructions={})
    assert encoder.render(["a"], meta.name, meta.type, "query", meta) == [
        "Instruct: Retrieve semantically similar text.\nQuery: a"]
    assert encoder.instruction_sources == {meta.name: "mteb default prompt for STS"}
    strict = tiny_encoder.fresh(instructions={}, strict_instructions=True)
    with pytest.raises(EvalkitError, match="strict_instructions=true refuses"):
        strict.render(["a"], meta.name, meta.type, "query", meta)


@pytest.mark.integration
def test_every_task_of_mteb_eng_v2_gets_a_spec_and_an_instruction(tiny_encoder):
    """What `mteb.evaluate(load_encoder(...), mteb.get_benchmark("MTEB(eng, v2)"))` asks of the encoder."""
    encoder = tiny_encoder.fresh(instructions={})
    tasks = mteb.get_benchmark("MTEB(eng, v2)").tasks
    assert len(tasks) == 41
    for task in tasks:
        meta = task.metadata
        spec = encoder.task_spec(meta.name, meta)
        assert spec.instruction and spec.split in meta.eval_splits and spec.type == meta.type, meta.name
        if not encoder.instruction_sources[meta.name].startswith("conf/tasks/"):
            assert spec.metric == meta.main_score, meta.name
    sources = list(encoder.instruction_sources.values())
    assert len(sources) == 41 and sum(s.startswith("conf/tasks/") for s in sources) == 25
    assert set(sources) - {MTEB_PROMPT} - {s for s in sources if s.startswith("conf/tasks/")} == {
        f"mteb default prompt for {t}" for t in ("Clustering", "Retrieval", "STS", "Summarization")}


@pytest.mark.integration
def test_mock_run_passes_on_every_text_mock_task_with_the_e5_protocol(tiny_encoder):
    encoder = tiny_encoder.fresh(instructions={})
    results = mteb.mock_run(encoder)
    ran = {name: r for name, r in results.items() if r is not None}
    assert len(ran) == 28 and results.all_passed, [r.exception[:200] for r in ran.values()
                                                   if not isinstance(r, TaskResult)]
    assert set(encoder.instruction_sources) == set(ran)


def write_sts_folder(folder, rows=12):
    folder.mkdir(parents=True)
    pairs = [("a cat sits", "a cat is sitting", 4.5), ("rivers flow", "the stock market fell", 0.5),
             ("bread is baked", "someone bakes bread", 4.8), ("chess openings", "violin strings", 0.2)]
    with (folder / "test.jsonl").open("w") as fh:
        for i in range(rows):
            s1, s2, score = pairs[i % len(pairs)]
            fh.write(json.dumps({"sentence1": f"{s1} {i}", "sentence2": f"{s2} {i}", "score": score}) + "\n")
    return folder


@pytest.mark.integration
def test_cli_runs_an_mteb_task_without_a_file_and_records_the_instruction(tmp_path):
    data = write_sts_folder(tmp_path / "sick")
    proc = evalkit("task=SICK-NL-STS", "model=tiny_mistral", f"data_dir={data}", f"results_dir={tmp_path}/r")
    assert proc.returncode == 0, proc.stderr
    assert "SICK-NL-STS: cosine_spearman = " in proc.stdout
    warned = [line for line in proc.stdout.splitlines() if "no task file gives its instruction" in line]
    assert len(warned) == 1 and "Haal semantisch vergelijkbare tekst op" in warned[0]
    path = next((tmp_path / "r").rglob("SICK-NL-STS.json"))  # a folder of its own: not the published test set
    record = json.loads(record_path(path).read_text())
    assert (record["instruction"], record["instruction_source"]) == ("Haal semantisch vergelijkbare tekst op",
                                                                     MTEB_PROMPT)
    assert record["encode"]["samples"]["query"]["text"].startswith("Instruct: Haal semantisch")


@pytest.mark.integration
def test_cli_strict_instructions_refuses_and_writes_nothing(tmp_path):
    data = write_sts_folder(tmp_path / "sick")
    proc = evalkit("task=SICK-NL-STS", "model=tiny_mistral", f"data_dir={data}", f"results_dir={tmp_path}/r",
                   "strict_instructions=true")
    assert_one_line_error(proc, "SICK-NL-STS: no instruction in task.instruction or conf/tasks/",
                          "strict_instructions=true refuses the mteb task metadata prompt")
    assert not (tmp_path / "r").exists()
    proc = evalkit("task=SICK-NL-STS", "model=tiny_mistral", f"data_dir={data}", f"results_dir={tmp_path}/r",
                   "strict_instructions=true", "task.instruction=Retrieve semantically similar text.")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(record_path(next((tmp_path / "r").rglob("SICK-NL-STS.json"))).read_text())
    assert record["instruction_source"] == EXPLICIT and "instruction" in record["experiment"]["differs"]
