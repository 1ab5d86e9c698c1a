"""The encoder adapter: equal to the model card's code, and the e5 instruction rules on every task type."""

from __future__ import annotations

import copy

import mteb
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from mteb.mocks.mock_tasks import (
    MockClassificationTask,
    MockPairClassificationTask,
    MockRerankingTask,
    MockRetrievalTask,
    MockSTSTask,
    MockSummarizationTask,
)
from mteb.mocks.mock_tasks.clustering import MockClusteringTask
from mteb.types import PromptType
from torch.utils.data import DataLoader

from evalkit import EvalkitError
from evalkit.config import EncodeConfig, TaskSpec, load_model_config
from evalkit.encoding.batching import length_batches
from evalkit.encoding.encoder import Encoder
from evalkit.encoding.loaded import LoadedModel
from evalkit.encoding.pipeline import Normalize, Pipeline, normalizes
from evalkit.encoding.model import token_ids


MOCKS = [MockRetrievalTask, MockClassificationTask, MockClusteringTask, MockPairClassificationTask,
         MockRerankingTask, MockSTSTask, MockSummarizationTask]
TEXTS = ["short one", "a much longer text about rivers and lakes " * 80, "cats " * 7, "", "x"]


def spec_for(task, instruction="Do the mock task", symmetric=False) -> TaskSpec:
    meta = task.metadata
    return TaskSpec(name=meta.name, mteb_task=meta.name, type=meta.type, split=meta.eval_splits[-1],
                    metric=meta.main_score, instruction=instruction, symmetric=symmetric)


def card_last_token_pool(last_hidden_states, attention_mask):
    """The model card's function, verbatim in behaviour."""
    left_padding = attention_mask[:, -1].sum() == attention_mask.shape[0]
    if left_padding:
        return last_hidden_states[:, -1]
    sequence_lengths = attention_mask.sum(dim=1) - 1
    return last_hidden_states[torch.arange(last_hidden_states.shape[0]), sequence_lengths]


def card_embeddings(encoder: Encoder, texts: list[str], max_length: int, side: str) -> np.ndarray:
    """The model card snippet: truncate to max_length - 1, append EOS, pad, pool, normalize."""
    tok = copy.copy(encoder.tokenizer)
    tok.padding_side = side
    batch = tok(texts, max_length=max_length - 1, return_attention_mask=False, padding=False, truncation=True)
    batch["input_ids"] = [ids + [tok.eos_token_id] for ids in batch["input_ids"]]
    batch = tok.pad(batch, padding=True, return_attention_mask=True, return_tensors="pt")
    with torch.no_grad():
        out = encoder.model(**batch)
    return F.normalize(card_last_token_pool(out.last_hidden_state, batch["attention_mask"]), p=2, dim=1).numpy()


def with_config(encoder: Encoder, instructions=None, **overrides) -> Encoder:
    """The session's tiny encoder with other config values (same weights and tokenizer)."""
    return encoder.fresh(model=encoder.loaded.with_config(load_model_config("tiny_mistral", **overrides)),
                         instructions=instructions)


@pytest.mark.unit
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("max_length", [16, 512])
def test_mteb_protocol_equals_the_model_card_code(tiny_encoder, side, max_length):
    task = MockRetrievalTask()
    encoder = with_config(tiny_encoder, {task.metadata.name: spec_for(task, "Given a claim, find documents")},
                          padding_side=side, max_length=max_length)
    loader = DataLoader(Dataset.from_dict({"text": TEXTS}), batch_size=2)
    ours = encoder.encode(loader, task_metadata=task.metadata, hf_split="test", hf_subset="default",
                          prompt_type=PromptType.query)
    rendered = [f"Instruct: Given a claim, find documents\nQuery: {t}" for t in TEXTS]
    reference = card_embeddings(encoder, rendered, max_length, side)
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    longest = max(len(ids) for ids in token_ids(encoder.tokenizer, rendered, encoder.cfg))
    assert longest == max_length  # the long text really was truncated


@pytest.mark.unit
def test_token_ids_start_with_bos_end_with_eos_and_respect_max_length(tiny_encoder):
    cfg = load_model_config("tiny_mistral", max_length=8)
    tok = tiny_encoder.tokenizer
    for ids in token_ids(tok, TEXTS, cfg):
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) <= 8
        assert tok.eos_token_id not in ids[1:-1]


class Recorder:
    """Wraps an encoder and keeps what each encode call rendered."""

    def __init__(self, encoder: Encoder):
        self.inner = encoder
        self.calls: list[tuple[str, str, list[str], np.ndarray]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
        texts = [t for batch in inputs for t in batch["text"]]
        side = "document" if prompt_type == PromptType.document else "query"
        rendered = self.inner.render(texts, task_metadata.name, task_metadata.type, side)
        out = self.inner.encode(DataLoader(Dataset.from_dict({"text": texts}), batch_size=8),
                                task_metadata=task_metadata, hf_split=hf_split, hf_subset=hf_subset,
                                prompt_type=prompt_type)
        self.calls.append((task_metadata.type, side, rendered, out))
        return out


def run_mock(encoder: Encoder, task_cls, symmetric=False) -> Recorder:
    task = task_cls()
    clone = encoder.fresh(instructions={task.metadata.name: spec_for(task, symmetric=symmetric)})
    recorder = Recorder(clone)
    mteb.evaluate(recorder, task, cache=None, overwrite_strategy="always", show_progress_bar=False)
    assert recorder.calls
    return recorder


@pytest.mark.integration
@pytest.mark.parametrize("task_cls", MOCKS, ids=lambda c: c.__name__)
def test_instruction_and_normalization_rules_on_every_task_type(tiny_encoder, task_cls):
    recorder = run_mock(tiny_encoder, task_cls)
    for task_type, side, rendered, out in recorder.calls:
        instructed = [t.startswith("Instruct: Do the mock task\nQuery: ") for t in rendered]
        if task_type == "Retrieval" and side == "document":
            assert not any(instructed)
        else:
            assert all(instructed), (task_type, side)
        norms = np.linalg.norm(out, axis=1)
        if task_type == "Classification":
            assert not np.allclose(norms, 1.0)
        else:
            np.testing.assert_allclose(norms, 1.0, atol=1e-5)


@pytest.mark.unit
def test_symmetric_retrieval_instructs_documents_too(tiny_encoder):
    recorder = run_mock(tiny_encoder, MockRetrievalTask, symmetric=True)
    assert {side for _, side, _, _ in recorder.calls} == {"query", "document"}
    assert all(t.startswith("Instruct: ") for _, _, rendered, _ in recorder.calls for t in rendered)


@pytest.mark.unit
def test_a_task_without_instruction_is_an_error(tiny_encoder):
    clone = tiny_encoder.fresh(instructions={})
    with pytest.raises(EvalkitError, match="no instruction for mteb task 'Nope'"):
        clone.render(["x"], "Nope", "Retrieval", "query")


@pytest.mark.unit
def test_stats_keep_the_first_rendered_query_and_document(tiny_encoder):
    recorder = run_mock(tiny_encoder, MockRetrievalTask)
    samples = recorder.inner.stats.samples
    tok = tiny_encoder.tokenizer
    assert samples["query"]["text"].startswith("Instruct: ")
    for side in ("query", "document"):
        ids = samples[side]["token_ids"]
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    record = recorder.inner.stats.as_record()
    assert record["texts"] > 0 and record["tokens"] <= record["padded_tokens"]


@pytest.mark.unit
def test_length_batches_respect_rows_and_token_budget():
    lengths = [5, 100, 7, 50, 50, 3, 99]
    batches = list(length_batches(lengths, max_rows=3, max_tokens=150))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3 and len(batch) * max(lengths[i] for i in batch) <= 150 or len(batch) == 1
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)


# -- the parts: a fresh adapter over loaded weights, pipeline steps, one owner per decision ------------------

@pytest.mark.unit
def test_a_fresh_encoder_shares_the_weights_and_nothing_it_records(tiny_encoder):
    before = copy.deepcopy(tiny_encoder.stats)
    fresh = tiny_encoder.fresh(encode=EncodeConfig(cache=False, show_progress=False, packing="padded"))
    out = fresh.embed(TEXTS)
    assert fresh.loaded is tiny_encoder.loaded and fresh.model is tiny_encoder.model
    assert fresh.stats.texts == len(TEXTS) and fresh.stats.packing == "padded/no-mask"
    assert tiny_encoder.stats == before and tiny_encoder.encode_cfg.packing == "auto"  # the original is untouched
    assert fresh.planner.checked == {} and tiny_encoder.planner.checked is not fresh.planner.checked
    np.testing.assert_allclose(out, tiny_encoder.fresh(encode=EncodeConfig(cache=False)).embed(TEXTS), atol=1e-5)


@pytest.mark.unit
@pytest.mark.parametrize("packing", ["packed", "padded"])
def test_a_head_added_to_the_pipeline_reaches_every_path_without_touching_the_adapter(tiny_encoder, packing):
    loaded = tiny_encoder.loaded
    doubled = Pipeline(pooling=loaded.pipeline.pooling, heads=(lambda pooled: 2 * pooled,),
                       normalize=loaded.pipeline.normalize)
    with_head = LoadedModel(loaded.cfg, loaded.device, loaded.tokenizer, loaded.backbone, doubled)
    encode = EncodeConfig(cache=False, show_progress=False, packing=packing)
    plain = tiny_encoder.fresh(encode=encode).embed(TEXTS, normalize=False)
    headed = tiny_encoder.fresh(model=with_head, encode=encode)
    np.testing.assert_allclose(headed.embed(TEXTS, normalize=False), 2 * plain, rtol=1e-5, atol=1e-5)
    assert headed.stats.packing.startswith(packing)  # the packed-vs-padded check compares the heads' outputs too
    np.testing.assert_allclose(headed.embed(TEXTS), tiny_encoder.fresh(encode=encode).embed(TEXTS), atol=1e-5)


@pytest.mark.unit
def test_whether_a_task_is_normalized_has_one_owner(tiny_encoder, monkeypatch):
    """The encoder and the experiment identity both ask `pipeline.Normalize.applies`: change it, both follow."""
    from evalkit.config import RunConfig
    from evalkit.identity import experiment, local_data
    from evalkit.tasks import get_task_spec

    cfg = RunConfig(task=get_task_spec("scifact"), model=load_model_config("tiny_mistral"))
    data = local_data("scifact", "0" * 16)
    assert tiny_encoder.normalizes("Retrieval") and not tiny_encoder.normalizes("Classification")
    assert experiment(cfg, data).identity["protocol"]["normalized"] is True
    monkeypatch.setattr(Normalize, "applies", lambda self, task_type: task_type == "Classification")
    assert not tiny_encoder.normalizes("Retrieval") and tiny_encoder.normalizes("Classification")
    assert experiment(cfg, data).identity["protocol"]["normalized"] is False
    assert normalizes(cfg.model, "Classification") and not normalizes(cfg.model, "Retrieval")


@pytest.mark.unit
def test_where_random_weights_are_drawn_is_decided_once(monkeypatch):
    """The cache key and the weights fingerprint name the device `model.random_init_device` decides."""
    from evalkit.encoding import model
    from evalkit.encoding.cache import model_identity
    from evalkit.encoding.weights_fingerprint import weights_fingerprint

    cfg = load_model_config("tiny_mistral")
    assert model_identity(cfg, "cpu", "w")["random_init"]["drawn_on"] == "cpu"
    on_cpu = weights_fingerprint(cfg, "cpu")
    monkeypatch.setattr(model, "random_init_device", lambda device_type: "cuda")
    assert model_identity(cfg, "cpu", "w")["random_init"]["drawn_on"] == "cuda"
    assert weights_fingerprint(cfg, "cpu") == weights_fingerprint(cfg, "cuda") != on_cpu
