"""`model=<sentence-transformers folder or hub id>` on the command line: the folder's own protocol, overrides that
contradict it in their own labelled results folder, registry wrappers evalkit does not reproduce refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from evalkit.config import RunConfig
from evalkit.encoding.st_folder import folder_model_config
from evalkit.identity import Data, experiment
from evalkit.tasks import get_task_spec
from tests.st_builders import st_folder
from test_cli import assert_one_line_error, evalkit

pytestmark = pytest.mark.integration  # folders built by sentence-transformers, command-line subprocesses

HUB_DATA = Data({"source": "hub", "datasets": ["mteb/scifact@x"]})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return st_folder(tmp_path_factory.mktemp("cli") / "m", pooling="weightedmean", include_prompt=False,
                     dense=((16, torch.nn.Tanh()),), prompts={"query": "q: ", "document": "d: "})


def test_folder_runs_with_its_own_protocol_and_records_it(folder, small_beir, tmp_path):
    proc = evalkit("task=scifact", f"model={folder}", f"data_dir={small_beir}", f"results_dir={tmp_path}/r",
                   "encode.show_progress=false", timeout=600)
    assert proc.returncode == 0, proc.stderr
    [record] = list((tmp_path / "r").glob("*/*/evalkit/SciFact.run.json"))
    run = json.loads(record.read_text())
    assert run["model"]["pooling"] == "weightedmean" and run["model"]["dense"] == ["2_Dense"]
    assert run["prompts"] == {"SciFact/query": {"prompt": "q: ", "source": "prompts['query']"},
                              "SciFact/document": {"prompt": "d: ", "source": "prompts['document']"}}
    assert run["model_folder"]["read"]["pooling"] == {"modes": ["weightedmean"], "include_prompt": False,
                                                      "dimension": 32}
    assert set(run["experiment"]["differs"]) == {"data"}  # the folder's own protocol: no difference
    assert run["identity"]["protocol"]["prompts"]["query"] == "q: "


@pytest.mark.parametrize("override, label", [({"max_length": 16}, "max_length"), ({"prompts": None}, "prompts"),
                                             ({"include_prompt": True}, "include_prompt"), ({"dense": []}, "dense"),
                                             ({"normalize": True}, "normalize")])
def test_an_override_contradicting_the_folder_is_a_protocol_difference(folder, override, label):
    cfg = folder_model_config(str(folder))
    spec = get_task_spec("scifact")
    same = experiment(RunConfig(task=spec, model=cfg), HUB_DATA)
    changed = experiment(RunConfig(task=spec, model=replace(cfg, **override)), HUB_DATA)
    assert same.differs == {} and same.folder == "no_revision_available"
    assert label in changed.differs and changed.folder != same.folder and changed.identity != same.identity


def test_unknown_name_without_a_slash_is_one_line(tmp_path):
    assert_one_line_error(evalkit("task=scifact", "model=nosuchmodel", f"results_dir={tmp_path}"),
                          "unknown model 'nosuchmodel'", "sentence-transformers folder or hub id")


def test_registry_wrapper_evalkit_does_not_reproduce_is_refused(tmp_path):
    proc = evalkit("task=scifact", "model=nomic-ai/nomic-embed-text-v1.5", f"results_dir={tmp_path}/r")
    assert_one_line_error(proc, "NomicWrapper", "does not reproduce")
    assert not (tmp_path / "r").exists()


def test_registry_prompts_replace_the_folders_and_say_so():
    from evalkit.encoding.sources import registry_protocol

    e5 = registry_protocol("intfloat/e5-base-v2")
    assert e5["prompts"] == {"query": "query: ", "document": "passage: "} and e5["similarity"] == "cosine"
    assert e5["revision"] and e5["loader"].endswith("SentenceTransformerEncoderWrapper")
    assert registry_protocol("someone/not-in-the-registry") is None


def test_hub_id_of_an_evalkit_config_takes_that_config():
    from evalkit.__main__ import model_choice

    assert model_choice("sentence-transformers/all-MiniLM-L6-v2", []) == "minilm"
    assert model_choice("intfloat/e5-mistral-7b-instruct", []) == "e5_mistral_7b"


def test_hub_id_offline_and_not_cached_is_one_line(tmp_path):
    proc = evalkit("task=scifact", "model=someone/not-cached-anywhere", f"results_dir={tmp_path}/r",
                   env={"HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(proc, "someone/not-cached-anywhere")
