"""suite=<mteb benchmark>: the tasks, splits and subsets mteb's Benchmark selects, for run, sweep and plan."""

from __future__ import annotations

import os
import subprocess
import sys

import mteb
import pytest
from hydra import compose, initialize

from evalkit import EvalkitError
from evalkit.__main__ import canonical_overrides, register_configs
from evalkit.benchmarks import benchmark_specs, find_benchmark, short_alias
from evalkit.config import to_run_config
from evalkit.tasks import get_task_spec, suite_task_names

from conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def selection(spec) -> tuple[str, list[str]]:
    """(split, subsets) a spec evaluates."""
    return spec.split, spec.hf_subsets or [spec.hf_subset]


def assert_selects_like_mteb(name: str) -> dict:
    bench = mteb.get_benchmark(name)
    specs = benchmark_specs(name, get_task_spec)
    assert [s.mteb_task for s in specs.values()] == [t.metadata.name for t in bench.tasks]
    for spec, task in zip(specs.values(), bench.tasks):
        assert selection(spec) == (task.eval_splits[0], list(task.hf_subsets)), spec.mteb_task
        assert get_task_spec(next(k for k, v in specs.items() if v is spec)) == spec  # the name resolves to it
    return specs


@pytest.mark.unit
def test_mteb_eng_v2_is_its_41_tasks_with_the_benchmarks_splits_and_subsets():
    specs = assert_selects_like_mteb("MTEB(eng, v2)")
    assert len(specs) == 41
    # every task as evalkit runs it by default: a benchmark run and a task= run share their results
    assert all(get_task_spec(name) == spec for name, spec in specs.items())
    assert specs["STS17"].hf_subset == "en-en" and specs["STS22.v2"].hf_subset == "en"
    assert specs["MassiveIntentClassification"].hf_subset == "en"


@pytest.mark.unit
@pytest.mark.parametrize("name", ["MTEB(eng, v2)", "mteb_eng_v2", "MTEB(eng)"])
def test_the_name_mteb_spells_its_aliases_and_the_short_alias_give_one_suite(name):
    assert suite_task_names(name) == list(benchmark_specs("MTEB(eng, v2)", get_task_spec))


@pytest.mark.unit
def test_evalkits_own_suites_stay():
    assert len(suite_task_names("mteb_eng")) == 56  # the paper's 56, not mteb's alias MTEB(eng) -> v2
    assert suite_task_names("scifact,nfcorpus") == ["SciFact", "NFCorpus"]
    with pytest.raises(EvalkitError, match="unknown suite 'no_such_suite'"):
        suite_task_names("no_such_suite")


@pytest.mark.unit
def test_short_aliases_are_unique():
    benches = mteb.get_benchmarks()
    assert short_alias("MTEB(eng, v2)") == "mteb_eng_v2"
    assert len({short_alias(b.name) for b in benches}) == len(benches)
    assert all(find_benchmark(short_alias(b.name)) is b for b in benches)


@pytest.mark.unit
def test_a_benchmark_that_narrows_subsets_gets_tasks_of_its_own_with_those_subsets():
    specs = assert_selects_like_mteb("MTEB(kor, v1)")
    qualified = {name: spec for name, spec in specs.items() if "@" in name}
    assert qualified and all(name.endswith("@mteb_kor_v1") for name in qualified)
    for name, spec in qualified.items():  # evalkit's default selection differs, so the name says whose it is
        assert selection(get_task_spec(spec.name)) != selection(spec)


@pytest.mark.unit
def test_a_sweep_composes_each_task_as_the_benchmark_selects_it():
    argv = canonical_overrides(["suite=MTEB(kor, v1)", "model=minilm"])
    assert argv[0] == "--multirun"
    tasks = next(a for a in argv if a.startswith("task=")).removeprefix("task=").split(",")
    assert sorted(tasks) == sorted(benchmark_specs("MTEB(kor, v1)", get_task_spec))
    name = next(t for t in tasks if "@" in t)
    argv = canonical_overrides([f"task={name}", "model=minilm"])  # one job of the sweep, as Hydra gets it
    register_configs(argv)
    with initialize(config_path=None, version_base="1.3"):
        run = to_run_config(compose(config_name="config", overrides=argv))
    assert run.task == benchmark_specs("MTEB(kor, v1)", get_task_spec)[name]


@pytest.mark.unit
def test_a_benchmark_evalkit_cannot_run_as_selected_is_refused_by_name():
    with pytest.raises(EvalkitError, match=r"LongEmbed: evalkit cannot run 2 of its 6 tasks .*LEMBNeedleRetrieval "
                                           r"\(splits test_256, .*one split per task"):
        suite_task_names("LongEmbed")
    with pytest.raises(EvalkitError, match=r"ViDoRe\(v1\): evalkit cannot run 10 of its 10 tasks .*text\+image task"):
        suite_task_names("vidore_v1")


@pytest.mark.integration
def test_plan_lists_the_41_tasks_offline():
    out = subprocess.run([sys.executable, "-m", "evalkit", "plan", "suite=MTEB(eng, v2)", "model=minilm",
                          "tokens_per_s=1000"], capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line.split()[0] for line in out.stdout.splitlines()[1:] if line.split()[1:2] == ["mteb"]]
    assert rows and sorted(rows) == sorted(benchmark_specs("MTEB(eng, v2)", get_task_spec))
    assert "MassiveScenarioClassification text (test): 2,970 texts already encoded for MassiveIntentClassification" \
        in out.stdout  # a shared set of texts is counted once


@pytest.mark.integration
def test_a_refused_benchmark_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "evalkit", "plan", "suite=LongEmbed", "model=minilm"],
                         capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("evalkit: error:")][0].count("LongEmbed") == 1


@pytest.mark.integration
def test_the_plain_list_does_not_import_mteb_and_names_the_benchmarks():
    code = ("import sys; from evalkit.__main__ import print_list; print_list(); "
            "assert 'mteb' not in sys.modules, 'mteb imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "mteb_eng_v2" in out.stdout and "evalkit list benchmarks" in out.stdout


@pytest.mark.integration
def test_list_benchmarks_shows_every_benchmark_by_the_names_suite_takes():
    out = subprocess.run([sys.executable, "-m", "evalkit", "list", "benchmarks"], capture_output=True, text=True,
                         env=ENV, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert any(line.split()[:2] == ["mteb_eng_v2", '"MTEB(eng,'] for line in out.stdout.splitlines())
    assert any(line.startswith("(beir)") for line in out.stdout.splitlines())  # evalkit's own beir suite wins
    assert f"{len(mteb.get_benchmarks())} mteb benchmarks" in out.stdout


@pytest.mark.unit
def test_the_instruction_table_in_the_docs_is_what_evalkit_and_mtebs_e5_entry_use():
    """docs/benchmarks.md: per task of MTEB(eng, v2), evalkit's instruction for e5_mistral_7b and its source,
    and whether mteb's own e5-mistral entry (its loader's get_instruction) picks the same."""
    from evalkit.instructions import instruction_rows

    lines = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| Task | Type | Instruction source | Instruction | Same as mteb 2.26's e5-mistral entry "
                        "| Same as the published run |") + 2
    table = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start:start + 41]]
    computed = instruction_rows("MTEB(eng, v2)")
    assert [(r[0], r[2], r[3]) for r in table] == [(t, s, i) for t, s, i, _ in computed]
    assert [r[4] for r in table] == ["yes" if i == m else f"no: {m!r}" for _, _, i, m in computed]
    sources = [s for _, s, _, _ in computed]
    assert sum(s.startswith("conf/tasks/") for s in sources) == 25
    with pytest.raises(EvalkitError, match="strict_instructions=true refuses"):  # the fallbacks, refused when strict
        from evalkit.instructions import resolve_instruction

        resolve_instruction(benchmark_specs("MTEB(eng, v2)", get_task_spec)["FEVERHardNegatives"], strict=True)


@pytest.mark.unit
def test_a_users_task_file_is_what_the_benchmark_runs(tmp_path, monkeypatch):
    from evalkit.conf_path import CONFIG_PATH_ENV

    assert benchmark_specs("MTEB(eng, v2)", get_task_spec)["STSBenchmark"].instruction == "Retrieve semantically similar text."
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "STSBenchmark.yaml").write_text(
        "mteb_task: STSBenchmark\ntype: STS\nsplit: test\nmetric: cosine_spearman\ninstruction: Mine\n")
    monkeypatch.setenv(CONFIG_PATH_ENV, str(tmp_path))
    assert benchmark_specs("MTEB(eng, v2)", get_task_spec)["STSBenchmark"].instruction == "Mine"  # not a cached spec
