"""The package: dependency floors checked at start (one line), pyproject in step with them, mteb metadata."""

from __future__ import annotations

import json
import re

import pytest

from evalkit import EvalkitError
from evalkit import versions
from evalkit.config import load_model_config

from conftest import REPO


@pytest.mark.unit
def test_release_numbers():
    assert versions.release("2.13.0+cpu") == (2, 13, 0)
    assert versions.release("5.0.0rc1") == (5, 0, 0)
    assert versions.release("4.56") > versions.release("4.55.4")


@pytest.mark.unit
def test_the_installed_packages_meet_the_floors():
    for command in versions.COMMAND_NEEDS:
        versions.require_for(command)


@pytest.mark.unit
@pytest.mark.parametrize("name, old", [("transformers", "4.55.4"), ("torch", "2.4.1"), ("mteb", "2.9.1")])
def test_an_old_release_is_named_with_the_upgrade(monkeypatch, name, old):
    real = versions.installed_version
    monkeypatch.setattr(versions, "installed_version", lambda dist: old if dist == name else real(dist))
    floor = versions.FLOORS[name][0]
    with pytest.raises(EvalkitError, match=rf"^{name} {re.escape(old)} is too old; evalkit needs {name}>={floor} "
                                           rf"\(.+\): pip install -U '{name}>={floor}'$"):
        versions.require_for("run")


@pytest.mark.unit
def test_a_missing_package_is_named(monkeypatch):
    real = versions.installed_version
    monkeypatch.setattr(versions, "installed_version", lambda dist: None if dist == "mteb" else real(dist))
    with pytest.raises(EvalkitError, match="mteb is not installed; evalkit needs mteb>=2"):
        versions.require_for("report")


@pytest.mark.unit
def test_the_cli_says_it_in_one_line_before_loading_anything(monkeypatch, capsys, tmp_path):
    from evalkit.__main__ import main

    real = versions.installed_version
    monkeypatch.setattr(versions, "installed_version", lambda dist: "4.55.4" if dist == "transformers" else real(dist))
    for argv in (["task=scifact", "model=minilm", f"results_dir={tmp_path}"], ["check", "suite=ci"], ["plan"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["evalkit: error: transformers 4.55.4 is too old; evalkit needs transformers>=4.56 "
                       "(from_pretrained(dtype=); older releases stop deep inside with a TypeError): "
                       "pip install -U 'transformers>=4.56'"]
    assert not (tmp_path / "sentence-transformers__all-MiniLM-L6-v2").exists()


@pytest.mark.unit
def test_pyproject_declares_the_same_floors():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {}
    for requirement in project["dependencies"]:
        name, floor = re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement).groups()
        declared[name.lower()] = floor
    for name, (floor, _) in versions.FLOORS.items():
        assert declared.get(name) == floor, f"pyproject.toml: {name}>={declared.get(name)}, versions.py: {floor}"
    assert project["scripts"]["evalkit"] == "evalkit.__main__:main"
    assert project["requires-python"] == ">=3.10"


# -- mteb metadata ---------------------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("name", ["e5_mistral_7b", "minilm", "tiny_mistral"])
def test_shipped_model_configs_declare_no_facts_a_model_that_includes_them_would_inherit(name):
    """License, languages, release date and reference of e5 and minilm come from mteb's registry (the round
    trip below); in the config files they would pass to every model whose defaults list includes them (the
    random tiny Mistral, a user's fine-tune of minilm) as facts about that other model."""
    cfg = load_model_config(name)
    assert (cfg.license, cfg.languages, cfg.release_date, cfg.reference) == (None, None, None, None)


@pytest.mark.unit
def test_a_model_that_includes_another_does_not_take_its_facts(tiny_encoder):
    from evalkit.encoding.meta import model_meta

    meta = model_meta(tiny_encoder.cfg, tiny_encoder.model)
    assert (meta.license, meta.release_date, meta.reference) == (None, None, None)


@pytest.mark.integration
def test_model_meta_round_trips_through_mtebs_result_cache(small_beir, tmp_path):
    """A run's model_meta.json is what mteb's ResultCache reads back: minilm's facts from mteb's registry, its
    parameters counted on the loaded model, the revision that ran."""
    import mteb
    from mteb.models.model_meta import ModelMeta

    from evalkit.config import EncodeConfig, RunConfig
    from evalkit.runner import run
    from evalkit.tasks import get_task_spec

    cfg = RunConfig(task=get_task_spec("scifact"), model=load_model_config("minilm"), data_dir=str(small_beir),
                    results_dir=str(tmp_path / "results"), encode=EncodeConfig(cache=False, show_progress=False))
    folder = run(cfg).path.parent  # small_beir is not the published test set: an experiment folder of its own
    assert folder.name.startswith(f"{cfg.model.revision}__data-")
    written = ModelMeta.model_validate(json.loads((folder / "model_meta.json").read_text()))
    loaded = mteb.ResultCache(cache_path=tmp_path).load_results(models=[cfg.model.name])
    meta = loaded.model_results[0].model_meta
    for meta_ in (written, meta):
        assert (meta_.name, meta_.revision) == (cfg.model.name, folder.name)  # the experiment that ran
        assert (meta_.n_parameters, meta_.embed_dim, meta_.max_tokens) == (22_713_216, 384, 256)
        assert (meta_.license, meta_.languages, meta_.release_date) == ("apache-2.0", ["eng-Latn"], "2021-08-30")
        assert meta_.reference == "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"
        assert str(meta_.similarity_fn_name.value if hasattr(meta_.similarity_fn_name, "value")
                   else meta_.similarity_fn_name) == "cosine"
        assert meta_.use_instructions is False and meta_.open_weights is True


@pytest.mark.unit
def test_a_model_mteb_does_not_know_gets_the_configs_facts(tiny_encoder):
    from dataclasses import replace

    from evalkit.encoding.meta import model_meta

    cfg = replace(tiny_encoder.cfg, license="mit", languages=["eng-Latn"], release_date="2026-01-01",
                  reference="https://example.org/tiny")
    meta = model_meta(cfg, tiny_encoder.model)
    assert (meta.name, meta.revision, meta.license, meta.languages) == ("evalkit/tiny-random-mistral", "seed0", "mit",
                                                                        ["eng-Latn"])
    assert meta.n_parameters == sum(p.numel() for p in tiny_encoder.model.parameters())
    assert (meta.embed_dim, meta.max_tokens, meta.use_instructions) == (64, 4096, True)
