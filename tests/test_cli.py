"""The command line: fast help and list, and bad input -> one line, exit 2, no result file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.integration


def evalkit(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m evalkit ARGS`; the timeout only guards against a hang, sized for a loaded 2-core machine."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "evalkit", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("evalkit: error: ")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize("args, needle", [(["list"], "SciFact"), (["--help"], "evalkit list"), ([], "commands:")])
def test_list_and_help_import_neither_torch_nor_hydra(args, needle):
    """Help and list are answered without composing a config: no torch, mteb or Hydra import."""
    code = ("import sys; from evalkit.__main__ import main; sys.argv = ['evalkit', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = {'torch', 'mteb', 'hydra'} & set(sys.modules)\n"
            "assert not heavy, f'heavy import: {heavy}'")
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert needle in proc.stdout


def test_help_names_the_commands_keys_and_config_folders():
    import dataclasses

    from evalkit.config import RunConfig

    text = evalkit("--help").stdout
    for needle in ("list", "plan", "cache", "report", "check", "-m task=", "suite=", "--config-dir",
                   "EVALKIT_CONFIG_PATH", "HF_HUB_OFFLINE", "minilm", "e5_mistral_7b", "beir"):
        assert needle in text, needle
    # the main keys are written by hand: each RunConfig key is named (the model./task./encode. key lists are
    # generated from their schemas, so checking them against the schemas would prove nothing)
    for f in dataclasses.fields(RunConfig):
        assert f"{f.name}=" in text or f"{f.name}.<key>=" in text, f.name


def test_list_shows_tasks_and_models():
    proc = evalkit("list")
    assert proc.returncode == 0
    assert "MSMARCO" in proc.stdout and "msmarco" in proc.stdout and "56 tasks" in proc.stdout
    assert "e5_mistral_7b" in proc.stdout and "minilm" in proc.stdout


def test_unknown_task(tmp_path):
    proc = evalkit("task=scifct", f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, "unknown task 'scifct'", "did you mean scifact")
    assert not (tmp_path / "r").exists()


def test_unknown_model(tmp_path):
    proc = evalkit("task=scifact", "model=minilmm", f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, "unknown model 'minilmm'", "did you mean minilm")


def test_missing_data_dir(tmp_path):
    proc = evalkit("task=scifact", "model=minilm", f"data_dir={tmp_path}/none", f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, "data_dir does not exist")
    assert not (tmp_path / "r").exists()


def test_malformed_jsonl(small_beir, tmp_path):
    (small_beir / "queries.jsonl").write_text('{"_id": "q0", "text": "ok"}\n{"_id": "q1", "text": \n')
    proc = evalkit("task=scifact", "model=minilm", f"data_dir={small_beir}", f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, "queries.jsonl:2: malformed JSON")
    assert not (tmp_path / "r").exists()


def test_model_path_that_does_not_exist(small_beir, tmp_path):
    proc = evalkit("task=scifact", "model=minilm", "model.name_or_path=/nonexistent/model",
                   f"data_dir={small_beir}", f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, "model path does not exist: /nonexistent/model")
    assert not (tmp_path / "r").exists()


def test_hub_model_offline_fails_fast(small_beir, tmp_path):
    proc = evalkit("task=scifact", "model=e5_mistral_7b", f"data_dir={small_beir}", f"results_dir={tmp_path}/r",
                   env={"HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(proc, "'intfloat/e5-mistral-7b-instruct' is not in the local Hugging Face cache",
                          "HF_HUB_OFFLINE=1")


@pytest.mark.parametrize("task", ["Banking77Classification", "MSMARCO"])
def test_hub_dataset_offline_fails_fast(tmp_path, task):
    proc = evalkit(f"task={task}", "model=minilm", f"results_dir={tmp_path}/r",
                   env={"HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(proc, f"data of {task} is not in the local Hugging Face cache",
                          "HF_HUB_OFFLINE=1", "data_dir=", "data_root=")


def test_unreachable_hub_fails_fast_with_the_fix(tmp_path):
    """HF_HUB_OFFLINE unset and the hub unreachable: one line naming data_dir=/data_root= and HF_HUB_OFFLINE=1, after
    one connection attempt rather than retries."""
    online = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9",
              "HF_HOME": str(tmp_path / "hf")}
    proc = evalkit("task=msmarco", "model=minilm", f"results_dir={tmp_path}/r", env=online)
    assert_one_line_error(proc, "cannot reach the Hugging Face hub at http://127.0.0.1:9", "data of MSMARCO",
                          "data_dir=", "data_root=", "HF_HUB_OFFLINE=1")
    # the message is evalkit.hub's single reachability check (the old path retried for half a minute and then
    # failed with another message); no wall-clock bound: on a loaded machine the start-up alone can exceed one
    proc = evalkit("task=scifact", f"data_dir={tmp_path}/none", f"results_dir={tmp_path}/r", env=online)
    assert_one_line_error(proc, "data_dir does not exist")  # a local folder never asks the hub


def test_unreachable_hub_for_a_model(small_beir, tmp_path):
    online = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    proc = evalkit("task=scifact", f"data_dir={small_beir}", f"results_dir={tmp_path}/r", env=online)
    assert_one_line_error(proc, "cannot reach the Hugging Face hub", "'intfloat/e5-mistral-7b-instruct'",
                          "model.name_or_path=", "HF_HUB_OFFLINE=1")


@pytest.mark.parametrize("arg, message", [
    ("tsk=scifact", "unknown key 'tsk'; did you mean task?"),
    ("encode.batchsize=8", "unknown key 'encode.batchsize'; did you mean encode.batch_size?"),
    ("model.poolng=cls", "unknown key 'model.poolng'; did you mean model.pooling?"),
    ("+tsk=scifact", "unknown key 'tsk'; did you mean task?"),
])
def test_a_typo_in_a_key_names_the_closest_key(arg, message, tmp_path):
    proc = evalkit("model=minilm", arg, f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, message)
    assert "hydra" not in proc.stderr.lower()


def test_summary_says_what_was_encoded_and_what_came_from_the_cache(small_beir, tmp_path):
    args = ("task=scifact", "model=tiny_mistral", f"data_dir={small_beir}", f"results_dir={tmp_path}/r")
    env = {"EVALKIT_CACHE": str(tmp_path / "cache")}
    first = evalkit(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "(12 texts encoded, 0 from the embedding cache;" in first.stdout
    again = evalkit(*args, env=env)
    assert (again.stdout + again.stderr).count("skipped") == 1  # the skip is said once
    cached = evalkit(*args, "overwrite=true", env=env)
    assert "(all 12 texts from the embedding cache;" in cached.stdout


def test_unknown_config_key(tmp_path):
    proc = evalkit("task=scifact", "model=minilm", "model.polling=mean", f"results_dir={tmp_path}/r")
    assert proc.returncode != 0 and "polling" in proc.stderr


def test_plan_on_local_folders_never_asks_the_hub(small_beir, tmp_path):
    """The hub unreachable and not declared offline: plan counts the local folder (the e5 tokenizer is not on this
    machine, so tokens are estimated: local~) without a connection attempt, and says what local~ means."""
    root = tmp_path / "beir"
    root.mkdir()
    (root / "scifact").symlink_to(small_beir)
    online = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9",
              "HF_HOME": str(tmp_path / "hf")}
    proc = evalkit("plan", "task=scifact", f"data_root={root}", env=online)
    assert proc.returncode == 0, proc.stderr
    assert "local~ = the local folder's texts" in proc.stdout
    [row] = [line.split() for line in proc.stdout.splitlines() if line.startswith("SciFact ")]
    assert row[1:3] == ["local~", "12"]  # the folder's 8 documents and 4 queries
    assert "127.0.0.1" not in proc.stderr and "Retrying" not in proc.stderr


@pytest.mark.parametrize("args, needle", [(["report", "--help"], "--compare"), (["check", "--list"], "ci")])
def test_the_commands_behind_evalkit(args, needle):
    proc = evalkit(*args)
    assert proc.returncode == 0, proc.stderr
    assert needle in proc.stdout


def in_process(*args: str) -> int:
    """`evalkit ARGS` in this process: its exit status (0 when it returns)."""
    from evalkit.__main__ import main

    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code or 0
    return 0


@pytest.mark.parametrize("flags", [["--cfg", "job"], ["-c", "job"], ["--cfg=job"]])
def test_hydra_flags_work_after_the_overrides(flags, capsys):
    """Hydra takes its overrides as one positional list: evalkit puts Hydra's flags first, wherever they were."""
    assert in_process("task=scifact", "model=minilm", *flags, "encode.batch_size=4") == 0
    out = capsys.readouterr().out
    assert "mteb_task: SciFact" in out and "batch_size: 4" in out and "max_length: 256" in out


def test_hydra_flags_first_keeps_flag_values_and_overrides():
    from evalkit.__main__ import hydra_flags_first

    assert hydra_flags_first(["a=1", "--cfg", "job", "b=2", "-m", "--info", "c=3", "--info", "searchpath"]) == [
        "--cfg", "job", "-m", "--info", "--info", "searchpath", "a=1", "b=2", "c=3"]


HELP_CHECK = """import contextlib, io, sys
from evalkit.__main__ import main
for command in ("list", "plan", "cache", "check", "report"):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([command, "--help"])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    assert code == 0, (command, code)
    assert out.getvalue().startswith("usage:"), (command, out.getvalue()[:200])
heavy = {"torch", "mteb", "transformers"} & set(sys.modules)
assert not heavy, f"heavy import: {heavy}"
"""


def test_every_command_answers_help_without_loading_torch_or_mteb():
    """`evalkit <command> --help` prints a usage (list's too, not the list) and exits 0, importing neither
    torch nor mteb (which is what made `cache --help` take seconds)."""
    proc = subprocess.run([sys.executable, "-c", HELP_CHECK], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr


def test_plan_help_and_plan_argument_errors(capsys):
    assert in_process("plan", "--help") == 0
    assert "tokens_per_s=" in capsys.readouterr().out
    for args, message in ((["sute=beir"], "unknown key 'sute'; did you mean suite?"),
                          (["suite=beir", "suite=mteb_eng"], "suite given twice"),
                          (["beir"], "expected key=value, got 'beir'"),
                          (["tokens_per_s=fast"], "tokens_per_s must be a number"),
                          (["suite=beir", "task=scifact"], "suite= or task=, not both")):
        assert in_process("plan", *args) == 2
        assert message in capsys.readouterr().err, args


NAME_CHECK = """import sys
from evalkit.__main__ import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code == 2, exc.code
heavy = {"torch", "mteb", "transformers", "hydra"} & set(sys.modules)
assert not heavy, f"heavy import: {heavy}"
"""


@pytest.mark.parametrize("args, message", [
    (["task=scifct"], "unknown task 'scifct'; did you mean scifact"),
    (["task=scifact", "model=minilm", "data_dir=/no/such/folder"], "data_dir does not exist or is not a folder"),
    (["-m", "task=scifact,nfcorpus", "data_root=/no/such/root"], "data_root does not exist or is not a folder"),
])
def test_unknown_task_and_missing_folder_fail_before_torch_and_mteb_load(args, message):
    from evalkit.tasks import mteb_task_names

    mteb_task_names()  # the index of mteb's task names, written once per mteb version (this cache: the tests')
    proc = subprocess.run([sys.executable, "-c", NAME_CHECK, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert message in proc.stderr


def test_mteb_names_index_is_rebuilt_when_damaged(tmp_path, monkeypatch):
    from evalkit import tasks
    from evalkit.versions import installed_version

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path))
    index = tasks.mteb_names_index(installed_version("mteb"))
    index.parent.mkdir(parents=True)
    index.write_text("{not json")
    tasks.mteb_task_names.cache_clear()
    try:
        assert tasks.mteb_task_names()["scifact"] == "SciFact"
    finally:
        tasks.mteb_task_names.cache_clear()
    assert "SciFact" in index.read_text()


def test_check_takes_its_keys_through_the_same_parser(capsys):
    from evalkit.check.__main__ import main as check

    assert check(["suite=ci", "model.poolng=cls"]) == 2
    assert "unknown key 'model.poolng'; did you mean model.pooling?" in capsys.readouterr().err
    assert check(["suite=ci", "suite=ci"]) == 2
    assert "suite given twice" in capsys.readouterr().err
