"""Errors: one line for the user, the traceback and its chain of causes under EVALKIT_DEBUG=1; no `from None`,
no bare `assert` as a runtime check, and every broad `except` accounted for."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import evalkit
from evalkit.errors import DEBUG_ENV

PACKAGE = Path(evalkit.__file__).parent
CHAIN = "The above exception was the direct cause of the following exception"


def stderr_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def run_evalkit(argv: list[str]) -> int:
    from evalkit.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code


@pytest.mark.unit
def test_evalkit_error_is_one_line_without_the_switch(monkeypatch, capsys):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert run_evalkit(["plan", "suite=beir", "tokens_per_s=fast"]) == 2
    assert stderr_lines(capsys) == ["evalkit: error: tokens_per_s must be a number, got 'fast'"]


@pytest.mark.unit
def test_evalkit_error_shows_its_chain_under_the_switch(monkeypatch, capsys):
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert run_evalkit(["plan", "suite=beir", "tokens_per_s=fast"]) == 2
    err = stderr_lines(capsys)
    text = "\n".join(err)
    assert "Traceback (most recent call last)" in text and CHAIN in text
    assert "ValueError: could not convert string to float: 'fast'" in text  # the cause, in full
    assert err[-1] == "evalkit: error: tokens_per_s must be a number, got 'fast'"  # the one line still comes last


@pytest.mark.unit
@pytest.mark.parametrize("value", ["", "0"])
def test_the_switch_off_values(monkeypatch, capsys, value):
    monkeypatch.setenv(DEBUG_ENV, value)
    assert run_evalkit(["plan", "suite=beir", "tokens_per_s=fast"]) == 2
    assert len(stderr_lines(capsys)) == 1


@pytest.mark.unit
@pytest.mark.parametrize("debug", [False, True])
def test_check_command(monkeypatch, capsys, tmp_path, debug):
    from evalkit.check.__main__ import main

    monkeypatch.setenv(DEBUG_ENV, "1" if debug else "0")
    suite = tmp_path / "broken.yaml"
    suite.write_text("tasks: [scifact\n")
    assert main([f"suite={suite}"]) == 2
    err = stderr_lines(capsys)
    assert err[-1].startswith("evalkit.check: error: ") and "not valid YAML" in err[-1]
    if debug:
        assert CHAIN in "\n".join(err) and any(line.startswith("yaml.") for line in err)
    else:
        assert len(err) == 1


@pytest.mark.unit
@pytest.mark.parametrize("debug", [False, True])
def test_report_command(monkeypatch, capsys, tmp_path, debug):
    from evalkit.report.__main__ import main

    monkeypatch.setenv(DEBUG_ENV, "1" if debug else "0")
    folder = tmp_path / "org__model" / "rev"
    folder.mkdir(parents=True)
    (folder / "SciFact.json").write_text('{"not": "a task result"}')
    assert main([str(tmp_path), "--out", str(tmp_path / "out"), "--no-plots"]) == 1
    err = stderr_lines(capsys)
    skipped = [line for line in err if "SciFact.json" in line and "not an mteb TaskResult" in line]
    assert len(skipped) == 1
    text = "\n".join(err)
    assert (CHAIN in text and "Traceback" in text) == debug


@pytest.mark.unit
@pytest.mark.parametrize("debug", [False, True])
def test_report_command_error(monkeypatch, capsys, tmp_path, debug):
    """An EvalkitError out of the report is one line and exit 2, not a traceback (the chain under the switch)."""
    from evalkit.report import __main__ as report

    def broken(argv, prog):
        try:
            raise OSError("disk full")
        except OSError as exc:
            raise evalkit.EvalkitError("cannot write the report") from exc

    monkeypatch.setattr(report, "render", broken)
    monkeypatch.setenv(DEBUG_ENV, "1" if debug else "0")
    assert report.main([str(tmp_path)]) == 2
    err = stderr_lines(capsys)
    assert err[-1] == "evalkit.report: error: cannot write the report"
    assert (len(err) == 1) != debug and ("OSError: disk full" in "\n".join(err)) == debug


@pytest.mark.unit
def test_help_documents_the_switch(capsys):
    from evalkit.__main__ import main

    main(["--help"])
    assert DEBUG_ENV in capsys.readouterr().out


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.unit
def test_no_error_drops_its_cause():
    found = [f"{p.relative_to(PACKAGE)}:{n}" for p in sources()
             for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bfrom None\b", line)]
    assert not found, f"`raise ... from None` drops the cause a bug report needs; chain it (`from exc`): {found}"


@pytest.mark.unit
def test_no_assert_as_a_runtime_check():
    found = [f"{p.relative_to(PACKAGE)}:{n}" for p in sources()
             for n, line in enumerate(p.read_text().splitlines(), 1) if re.match(r"\s*assert\b", line)]
    assert not found, f"`assert` is skipped under python -O; raise EvalkitError instead: {found}"


# Every broad `except` in the package, and why it is right: each re-raises, chained, or hands the exception on.
BROAD_EXCEPTS = {
    "files.py": (1, "removes the temporary file, then re-raises the same exception"),
    "encoding/batching.py": (1, "the producer thread hands the exception to the consumer, which raises it"),
    "encoding/shard.py": (2, "safetensors, json and key errors alike mean a damaged shard: DamagedShard from exc"),
    "mteb_folder.py": (2, "pyarrow/datasets and a task's dataset_transform raise many kinds: EvalkitError from exc"),
    "runner.py": (1, "datasets raises many kinds: EvalkitError from exc"),
    "identity.py": (1, "network and hub errors come in many kinds: EvalkitError from exc"),
    "report/runs.py": (1, "mteb's TaskResult parsing raises many kinds: ReportInputError from exc"),
    "results.py": (1, "removes the record of a result never written (Ctrl-C included), then re-raises the same"),
    "report/leaderboard.py": (1, "mteb's TaskResult parsing raises many kinds: that published file is named, skipped"),
    "encoding/st_folder.py": (1, "hub errors come in many kinds: EvalkitError (or the offline line) from exc"),
    "encoding/st_encode.py": (1, "a module's own loading code raises anything: EvalkitError from exc"),
}


@pytest.mark.unit
def test_every_broad_except_is_accounted_for():
    broad = re.compile(r"\s*except\s*(\(?\s*(Exception|BaseException)\b[^:]*)?:")
    counts = {}
    for p in sources():
        for line in p.read_text().splitlines():
            if broad.match(line):
                key = str(p.relative_to(PACKAGE))
                counts[key] = counts.get(key, 0) + 1
    assert counts == {name: n for name, (n, _) in BROAD_EXCEPTS.items()}, (
        "a broad `except` was added or removed: narrow it to what it means, or re-raise with its cause and "
        "list it in BROAD_EXCEPTS with the reason")


EOS_CHECK = """
from evalkit import EvalkitError
from evalkit.config import ModelConfig
from evalkit.encoding.model import token_ids

class Tokenizer:
    bos_token_id, eos_token_id = 1, 2
    def __call__(self, texts, add_special_tokens=True):
        return {"input_ids": [[5, 6, 7] for _ in texts]}

assert __debug__ is False, "this check must run under python -O"
try:
    token_ids(Tokenizer(), ["a text"], ModelConfig(name="m", name_or_path="m", max_length=1))
except EvalkitError as exc:
    print("refused:", exc)
else:
    print("accepted")
"""


@pytest.mark.integration
def test_eos_check_holds_under_python_O():
    """The [BOS] + text + [EOS] within max_length check is a real check: `python -O` does not switch it off."""
    out = subprocess.run([sys.executable, "-O", "-c", EOS_CHECK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused: m: a tokenized text is not [BOS] + text + [EOS] within max_length=1"), out.stdout


@pytest.mark.unit
@pytest.mark.parametrize("debug", [False, True])
def test_cache_command(monkeypatch, capsys, tmp_path, debug):
    from evalkit.encoding import cache_cli

    from evalkit.files import CACHE_MARKER

    (tmp_path / "model-key" / "shards").mkdir(parents=True)
    for folder in (tmp_path, tmp_path / "model-key"):  # a cache evalkit wrote: its marker in the root and the model folder
        (folder / CACHE_MARKER).touch()

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache_cli.shutil, "rmtree", refuse)
    monkeypatch.setenv(DEBUG_ENV, "1" if debug else "0")
    assert run_evalkit(["cache", "clear", "--dir", str(tmp_path)]) == 2
    err = stderr_lines(capsys)
    assert err[-1] == f"evalkit: error: cannot remove {tmp_path / 'model-key'} (Permission denied); nothing after it was removed"
    assert (len(err) == 1) != debug and ("PermissionError: [Errno 13]" in "\n".join(err)) == debug
