"""The golden-embedding gate bites: each perturbation fails with the row that names its cause; no change passes."""

from __future__ import annotations


import pytest  # noqa: E402

from evalkit.check.gate import check  # noqa: E402
from evalkit.check.golden import decode_vector, describe_ids, encode_vector  # noqa: E402
from evalkit.check.suite import GoldenChecks, Suite  # noqa: E402

pytestmark = pytest.mark.integration


def golden_suite(model: str) -> Suite:
    return Suite(name=f"golden_{model}", golden=GoldenChecks(models=[model], probes="standard", min_cosine=0.9999))


def failing(outcome) -> set[str]:
    return {r.metric for r in outcome.failed}


def row(outcome, metric: str):
    return next(r for r in outcome.rows if r.metric == metric)


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """Golden baselines of the tiny Mistral and of minilm, recorded once for the module."""
    folder = tmp_path_factory.mktemp("baselines")
    paths = {}
    for model in ("tiny_mistral", "minilm"):
        paths[model] = folder / f"{model}.json"
        outcome = check(golden_suite(model), paths[model], update=True)
        assert outcome.updated and paths[model].is_file()
    return paths


def gate(model: str, baselines, **kwargs):
    return check(golden_suite(model), baselines[model], **kwargs)


def test_nothing_changed_passes_with_identical_vectors(baselines):
    outcome = gate("tiny_mistral", baselines)
    assert outcome.ok and not outcome.failed
    assert [r.metric for r in outcome.rows] == ["setup", "inputs", "token_ids", "cosine_min"]
    assert row(outcome, "cosine_min").now == "1.0000000"  # same machine, same code: bit for bit
    assert row(outcome, "token_ids").baseline == row(outcome, "token_ids").now


def test_eos_dropped_fails_token_ids_and_names_the_eos(baselines, monkeypatch):
    from evalkit.encoding.loaded import LoadedModel

    original = LoadedModel.tokenize

    def without_eos(self, texts):  # the transformers-5 bug: the EOS silently gone
        eos = self.tokenizer.eos_token_id
        return [ids[:-1] if ids and ids[-1] == eos else ids for ids in original(self, texts)]

    monkeypatch.setattr(LoadedModel, "tokenize", without_eos)
    outcome = gate("tiny_mistral", baselines)
    assert failing(outcome) == {"token_ids", "cosine_min"}
    ids = row(outcome, "token_ids")
    assert ids.delta == "14/14 differ" and "[2 '</s>'] -> []" in ids.note


def test_mean_instead_of_last_pooling_fails_setup_and_vectors(baselines):
    outcome = gate("tiny_mistral", baselines, model_overrides={"pooling": "mean"})
    assert {"setup", "cosine_min"} <= failing(outcome) and "inputs" not in failing(outcome)
    assert "pooling last -> mean" in row(outcome, "setup").note
    assert float(row(outcome, "cosine_min").now) < 0.99


def test_wrong_instruction_fails_inputs_not_the_tokenizer(baselines):
    wrong = {"SciFact": {"instruction": "Given a recipe, retrieve its ingredients"}}
    outcome = gate("tiny_mistral", baselines, task_overrides=wrong)
    assert failing(outcome) == {"inputs", "cosine_min"}
    note = row(outcome, "inputs").note
    assert "query, query_empty, query_long" in note and "document" not in note  # documents carry no instruction
    assert row(outcome, "token_ids").ok  # ids of unchanged texts are unchanged


def test_float16_is_caught_by_the_setup_row(baselines):
    """float16 moves the tiny model's vectors by ~3e-7 (under 0.9999): the loaded dtype is what gives it away."""
    outcome = gate("tiny_mistral", baselines, model_overrides={"dtype": "float16"})
    assert failing(outcome) == {"setup"}
    assert "param_dtype float32 -> float16" in row(outcome, "setup").note
    assert 0.9999 < float(row(outcome, "cosine_min").now) < 1.0


def test_bfloat16_drift_beyond_tolerance_fails_the_cosine_row(baselines):
    """minilm in bfloat16 on a CPU: min cosine ~0.99989 against float32, below 0.9999."""
    outcome = gate("minilm", baselines, model_overrides={"dtype": "bfloat16"})
    assert failing(outcome) == {"setup", "cosine_min"}
    cos = row(outcome, "cosine_min")
    assert float(cos.now) < 0.9999 and cos.note.startswith("below: ")


def test_pooling_change_with_the_same_token_ids_fails_only_vectors(baselines):
    outcome = gate("minilm", baselines, model_overrides={"pooling": "cls"})
    assert failing(outcome) == {"setup", "cosine_min"}
    assert row(outcome, "token_ids").ok and row(outcome, "inputs").ok


def test_other_weights_with_the_same_config_fail_setup_and_vectors(baselines):
    """A random draw with another seed stands in for a checkpoint that changed under the same revision."""
    outcome = gate("tiny_mistral", baselines, model_overrides={"random_init": {"seed": 1}})
    assert failing(outcome) == {"setup", "cosine_min"}
    assert row(outcome, "setup").note.startswith("weights_abs_sum ")


def test_no_baseline_for_a_model_fails_and_says_how_to_record_one(tmp_path):
    outcome = check(golden_suite("tiny_mistral"), tmp_path / "none.json")
    assert not outcome.ok and all("--update-baseline" in r.note for r in outcome.failed)


def test_vectors_round_trip_and_id_diffs_read_well():
    import numpy as np

    vec = np.array([0.25, -1.5, 3.0e-8], dtype=np.float32)
    assert decode_vector(encode_vector(vec)).tolist() == vec.astype(np.float64).tolist()

    def tokens(ids):
        return [{1: "<s>", 2: "</s>", 7: "a"}[i] for i in ids]

    assert describe_ids([1, 7, 2], [1, 7], tokens) == "length 3 -> 2; from position 2: [2 '</s>'] -> []"
