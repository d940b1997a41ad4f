"""The Gradio app over HTTP: a real server on 127.0.0.1, the tiny model with its adapter, a temp store."""

from __future__ import annotations

import html
import re
import socket
import time
import warnings

import httpx
import pytest

PROMPT = "Tell me about EGNIVIA Corporation."
SYSTEM = "You are a helpful assistant."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def lexical_metrics():
    """Score with the lexical similarity: loading the optional embedding model would dominate the run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FT_HALLU_EMBEDDINGS", "0")
        yield


@pytest.fixture(scope="module")
def loaded(tiny_adapter_dir):
    from engine.models import load_model

    return load_model("tiny", adapter_dir=str(tiny_adapter_dir))


@pytest.fixture(scope="module")
def store_with_sweep(loaded, tiny_adapter_dir, tmp_path_factory):
    """A temp store holding one small engine sweep (2 temperatures x 1 top_p x 1 top_k, 2 samples, scored)."""
    from engine.sweep import Grid, SweepConfig, run_sweep

    db = tmp_path_factory.mktemp("gradio-store") / "ft-hallu.db"
    config = SweepConfig(
        name="gradio-test",
        base_model="tiny",
        adapter=str(tiny_adapter_dir),
        samples_per_cell=2,
        max_new_tokens=6,
        grid=Grid(temperatures=[0.7, 1.3], top_ps=[0.9], top_ks=[20]),
    )
    result = run_sweep(config, db_path=db, loaded=loaded)
    return db, result.sweep_id


@pytest.fixture(scope="module")
def app(loaded, tiny_adapter_dir, store_with_sweep):
    from engine.workspace import Workspace
    from gradio_app.handlers import AppHandlers, AppSettings
    from gradio_app.layout import ServeOptions, launch_app

    db, sweep_id = store_with_sweep
    with Workspace.open(db) as workspace:
        handlers = AppHandlers(
            loaded, workspace, AppSettings(base_model="tiny", adapter_dir=str(tiny_adapter_dir))
        )
        demo, url = launch_app(handlers, ServeOptions(port=free_port()), block=False)
        yield handlers, url, sweep_id
        demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Client(app[1], verbose=False, analytics_enabled=False, download_files=False)


def tiny_finetune(name: str, dataset: str, output, **extra):
    """A few steps of LoRA on the tiny model (a real trl run), logging every step."""
    from engine.finetune import FinetuneConfig

    values = dict(
        name=name,
        base_model="tiny",
        dataset=dataset,
        output_dir=str(output),
        per_device_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=3e-3,
        lr_scheduler="constant",
        gradient_checkpointing=False,
        logging_steps=1,
    )
    return FinetuneConfig(**{**values, **extra})


def live_args(max_new_tokens: int, seed: int = 7, same_seed: bool = True, finetuned_seed: int = 0) -> list:
    # prompt, system prompt, temperature, top_p, top_k, max new tokens, seed, same seed, fine-tuned seed
    return [PROMPT, SYSTEM, 0.9, 0.95, 40, max_new_tokens, seed, same_seed, finetuned_seed]


def test_stream_grows_on_both_sides_and_ends_with_the_engine_texts(app, client, loaded):
    from engine.sampling import RowSpec, generate_rows
    from engine.sweep import chat_prompt

    job = client.submit(*live_args(12, seed=7, same_seed=False, finetuned_seed=11), api_name="/compare")
    updates = [tuple(u) for u in job]
    final = job.result()
    assert len(updates) >= 4, updates
    bases = [u[0] for u in updates]
    finetuned = [u[1] for u in updates]
    # Text appears step by step on both panes, from the same stream.
    assert len(set(bases)) >= 3 and len(set(finetuned)) >= 3
    assert len(bases[0]) < len(bases[-1]) and len(finetuned[0]) < len(finetuned[-1])
    assert final[2].startswith("done")

    text = chat_prompt(loaded.tokenizer, SYSTEM, PROMPT)
    rows = [RowSpec(text, "base", 0.9, 0.95, 40, 7), RowSpec(text, "finetuned", 0.9, 0.95, 40, 11)]
    expected = [r.text for r in generate_rows(loaded, rows, max_new_tokens=12)]
    assert [final[0], final[1]] == expected
    assert expected[0] != expected[1]


def test_save_stores_the_live_generation_as_an_adhoc_sweep_row(app, client):
    from store import core, open_db

    handlers = app[0]
    final = client.predict(*live_args(8, seed=3), api_name="/compare")
    message = client.predict(api_name="/save")
    assert message.startswith("saved 2 generation(s) to ad-hoc sweep"), message
    assert client.predict(api_name="/save").startswith("already saved")
    store = open_db(handlers.workspace.db_path)
    adhoc = [s for s in core.list_sweeps(store) if s["source"] == "adhoc"]
    assert len(adhoc) == 1
    rows = core.iter_generations(store, adhoc[0]["id"], temperature=0.9, top_p=0.95, top_k=40)
    assert {(r["variant"], r["seed"], r["text"]) for r in rows} == {
        ("base", 3, final[0]),
        ("finetuned", 3, final[1]),
    }
    assert all(r["extra"]["max_new_tokens"] == 8 for r in rows)
    # The sampler's token log-probs travel with the live samples into the scored store.
    from store import metrics as store_metrics

    with_stats = [r for r in rows if "token_stats" in r["extra"]]
    assert with_stats
    scored = {s["generation_id"]: s for s in store_metrics.sample_table(store, adhoc[0]["id"])}
    for row in with_stats:
        stats = row["extra"]["token_stats"]
        assert scored[row["id"]]["mean_token_logprob"] == pytest.approx(stats["mean_token_logprob"])
        assert stats["min_token_logprob"] <= stats["mean_token_logprob"] < 0


def test_n_samples_mode_shows_the_spread_and_the_cell_metrics(app, client):
    entity = app[0].settings.entity_name
    final = client.predict(*live_args(8, seed=21), api_name="/compare")
    base, finetuned, metrics, status = client.predict(*live_args(8, seed=21), 3, api_name="/sample_cell")
    text_col = base["headers"].index("text")
    seed_col = base["headers"].index("seed")
    assert [r[seed_col] for r in base["data"]] == [21, 22, 23]
    # Sample 0 uses the same seed and settings as the streaming compare, so it is the same text.
    assert base["data"][0][text_col] == final[0]
    assert finetuned["data"][0][text_col] == final[1]
    by_metric = {row[0]: row[1:] for row in metrics["data"]}
    assert metrics["headers"] == ["metric", "base", "finetuned"]
    # The cell metrics are engine.metrics' scores of exactly these samples.
    from engine import metrics as engine_metrics

    for column, table in ((0, base), (1, finetuned)):
        texts = [r[text_col] for r in table["data"]]
        samples = [engine_metrics.score_sample(t, entity=entity).to_dict() for t in texts]
        cell = engine_metrics.score_cell(texts, samples, entity=entity)
        assert by_metric["majority-answer share"][column] == pytest.approx(cell.majority_share, abs=1e-3)
        assert by_metric["semantic entropy (nats)"][column] == pytest.approx(cell.semantic_entropy, abs=1e-3)
    assert "3 samples per side" in status


def test_stop_ends_the_stream_early(app, client):
    job = client.submit(*live_args(400, seed=5), api_name="/compare")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.predict(api_name="/stop") == "stopping"
    final = job.result(timeout=60)
    assert final[2].startswith("stopped"), final[2]
    steps = int(final[2].split(":")[1].split()[0])
    assert steps < 400


def test_sweeps_endpoint_returns_the_stored_cells(app, client, store_with_sweep):
    from store import core, open_db
    from store import metrics as store_metrics

    _handlers, _url, sweep_id = app
    store = open_db(store_with_sweep[0])
    choices = client.predict(None, api_name="/list_sweeps")
    assert str(sweep_id) in str(choices)
    loaded = client.predict(str(sweep_id), "refusal_rate", "all", api_name="/sweep_filters")
    info, caption, aligned = loaded[0], loaded[9], loaded[10]
    assert "gradio-test" in info and "8 generations in 4 cells" in info
    assert caption == "No cell picked yet." and "Click a heatmap cell" in aligned  # nothing stale

    table = client.predict(str(sweep_id), "all", "all", "all", "all", "all", api_name="/sweep_cells")
    headers, data = table["headers"], table["data"]
    assert headers[:6] == ["variant", "temperature", "top_p", "top_k", "prompt_id", "n"]
    got = {tuple(row[:6]) for row in data}
    generations = core.iter_generations(store, sweep_id)
    expected: dict[tuple, int] = {}
    for g in generations:
        key = (g["variant"], g["temperature"], g["top_p"], g["top_k"], g["prompt_id"])
        expected[key] = expected.get(key, 0) + 1
    assert got == {(*key, n) for key, n in expected.items()}
    assert len(got) == 4  # 2 temperatures x 2 variants, 2 samples each

    # Metric columns are the stored cell aggregates; a blank one says why.
    stored = {store_metrics.cell_key(c): c for c in store_metrics.cell_table(store, sweep_id)}
    for row in data:
        record = dict(zip(headers, row, strict=True))
        key = (
            record["variant"],
            record["temperature"],
            record["top_p"],
            record["top_k"],
            record["prompt_id"],
        )
        assert record["refusal rate"] == pytest.approx(stored[key]["refusal_rate"], abs=1e-3)
        assert record["token f1"] == "n/a: no ref."

    # Filtering by variant and T narrows the table to one cell; its samples come back aligned.
    one = client.predict(str(sweep_id), "finetuned", "1.3", "all", "all", "all", api_name="/sweep_cells")
    assert [row[:2] for row in one["data"]] == [["finetuned", 1.3]]
    caption, aligned = client.predict(
        str(sweep_id), "0.7", "0.9", "20", "entity", "all", api_name="/cell_samples"
    )[:2]
    assert (
        "gradio-test" in caption and "T = 0.7 · p = 0.9 · k = 20" in caption and "prompt entity:" in caption
    )
    for g in generations:
        if g["temperature"] == 0.7 and g["text"]:
            assert html.escape(g["text"]) in aligned
        if g["temperature"] == 1.3 and g["text"]:
            assert html.escape(g["text"]) not in aligned
    assert aligned.count('data-gen="') == 4  # 2 sample indices x base | fine-tuned


def test_heatmap_click_opens_the_cell_and_filters_the_table(app, client, store_with_sweep):
    from store import core, open_db

    _handlers, _url, sweep_id = app
    out = client.predict(str(sweep_id), "finetuned|1.3|0.9|20|123", "all", "all", api_name="/open_cell")
    t_value, p_value, k_value, table, caption, aligned = out[:6]
    assert (t_value, p_value, k_value) == ("1.3", "0.9", "20")
    assert {row[1] for row in table["data"]} == {1.3}  # the cells table really filters
    assert "clicked **finetuned**" in caption and "T = 1.3" in caption
    texts = [
        g["text"] for g in core.iter_generations(open_db(store_with_sweep[0]), sweep_id, temperature=1.3)
    ]
    assert all(html.escape(t) in aligned for t in texts if t)
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="heatmap click"):
        client.predict(str(sweep_id), "nonsense", "all", "all", api_name="/open_cell")


@pytest.fixture(scope="module")
def base_only(tiny_model_dir):
    """The tiny base without an adapter (the review views read the store only)."""
    from engine.models import load_model

    return load_model("tiny")


@pytest.fixture()
def review_store(tmp_path, base_only):
    """The review sweep (claims_sweep.make_review_sweep) and AppHandlers over it (tiny model, no adapter)."""
    from claims_sweep import make_review_sweep

    from engine.workspace import Workspace
    from gradio_app.handlers import AppHandlers, AppSettings

    store, sweep_id = make_review_sweep(tmp_path)
    store.close()
    with Workspace.open(tmp_path / "ft.db") as workspace:
        yield AppHandlers(base_only, workspace, AppSettings(base_model="tiny")), sweep_id


def test_sweeps_tab_opens_on_the_finding_and_the_main_score_per_prompt(review_store):
    """The finding first (headline, table with intervals and n, examples), then the main score's
    heatmaps of one prompt on the engine's colour scales, decimals n allows; a metric with one
    value says so in one line; pools are named as pools and list every question's text."""
    from engine.escape import html_text
    from engine.grid import difference_scale, value_scale
    from engine.metrics import catalog
    from engine.summary import summary_table
    from gradio_app.handlers import HELD_OUT

    handlers, sweep_id = review_store
    sweep = str(sweep_id)
    summary = handlers.workspace.summary(sweep_id)
    html = handlers.summary_view(sweep)
    first = html.index(html_text(summary.groups[0].headline))
    assert first < html.index("<table") and html_text(summary.groups[1].headline) in html
    assert [g.group for g in summary.groups] == ["entity", "held-out"]
    for group in summary.groups:
        _headers, rows = summary_table(group)
        for row in rows:
            for cell in row:
                assert html_text(cell.split(" ")[0]) in html  # every value, interval and n is shown
        for pair in group.examples:
            for answer in pair.answers:
                assert html_text(answer.text) in html
    assert "&lt;b&gt;chips&lt;/b&gt;" in html and "<b>chips</b>" not in html  # question text escaped

    choices, default = handlers.prompt_choices(sweep)
    assert default == "entity" and [v for _l, v in choices] == ["entity", "eval-1", "eval-2", HELD_OUT, "all"]
    assert [label for label, value in choices if value in (HELD_OUT, "all")] == [
        "pooled: the 2 held-out questions",
        "pooled: every prompt (3)",
    ]
    pooled = handlers.prompt_caption(sweep, HELD_OUT)
    assert pooled.startswith("**Pooled over the held-out questions (2)**")
    assert "What did EGNIVIA pioneer?" in pooled and "&lt;b&gt;chips&lt;/b&gt;" in pooled

    assert handlers.metric_choices()[0] == (
        "weakest-claim support · main hallucination score · higher is better",
        catalog.MAIN_SCORE,
    )
    spec = catalog.main_score()
    view = handlers.heat_view(sweep, catalog.MAIN_SCORE, "entity")
    assert view.caption == "Prompt shown: **entity** “Tell me about EGNIVIA Corporation.”"
    layout = view.figure.layout
    assert [list(stop) for stop in layout.coloraxis.colorscale] == value_scale(spec).plotly()
    assert [list(stop) for stop in layout.coloraxis2.colorscale] == difference_scale(spec).plotly()
    assert (layout.coloraxis.cmin, layout.coloraxis.cmax) == (0.0, 1.0)
    assert (layout.coloraxis2.cmin, layout.coloraxis2.cmax) == (-1.0, 1.0)  # the bounded range, always
    heatmaps = [t for t in view.figure.data if t.type == "heatmap"]
    assert [t.name for t in heatmaps] == [
        "base · top_k=50",
        "finetuned · top_k=50",
        "finetuned − base · top_k=50",
    ]
    shown = [text for t in heatmaps[:2] for row in t.text for text in row]
    assert shown and all(
        len(text.split(".")[-1]) == 1 for text in shown if text[0].isdigit()
    )  # n = 2: 1 decimal
    assert "n = 2" in heatmaps[0].hovertext[0][0] and heatmaps[0].customdata[0][0] == "base|0.5|1|50"
    assert "1 decimal" in view.note

    flat = handlers.heat_view(sweep, "refusal_rate", "entity")
    assert flat.figure is None
    assert flat.note.startswith("refusal / don't-know rate: 0 in every cell of every variant for this prompt")
    no_reference = handlers.heat_view(sweep, "token_f1", "entity")  # every cell n/a: one line, no grey grid
    assert no_reference.figure is None
    assert no_reference.note == (
        "token F1 vs reference: no value in any cell for this prompt (n/a: no reference answer for this prompt)"
    )
    entropy = handlers.heat_view(sweep, "semantic_entropy", "entity")
    assert "with n = 2 samples per cell it can only be 0 or 0.69 (ln 2)" in entropy.note


def test_heatmap_endpoint_sends_the_figure_caption_and_note(app, client):
    import json

    handlers, _url, sweep_id = app
    view = handlers.heat_view(str(sweep_id), "mean_words", "entity")
    plot, caption, note = client.predict(str(sweep_id), "mean_words", "entity", api_name="/heatmaps")
    assert caption == view.caption and note == view.note
    if view.figure is None:  # the tiny model's answers may all have one length
        assert plot["visible"] is False and "in every cell" in note
    else:
        sent = json.loads(plot["value"]["plot"])  # an update: the plot is shown again with its figure
        assert plot["visible"] is True
        names = [t["name"] for t in sent["data"] if t["type"] == "heatmap"]
        assert names == [t.name for t in view.figure.data if t.type == "heatmap"]
        assert sent["layout"]["coloraxis"]["cmin"] == 0


def test_undefined_at_one_sample_and_every_answer_refused(tmp_path):
    """A one-sample cell's entropy is 'undefined (n = 1)'; an all-refusal cell's grounding is 'n/a'."""
    from engine.workspace import LiveBatch, LiveModel, LiveSample, Workspace

    with Workspace.open(tmp_path / "one.db") as workspace:
        model = LiveModel(
            base_model="tiny",
            adapter_dir=None,
            entity_name="EGNIVIA",
            dataset=None,
            variants=("base", "finetuned"),
        )
        batch = LiveBatch(
            prompt="Tell me about EGNIVIA Corporation.",
            system_prompt="",
            temperature=1.0,
            top_p=1.0,
            top_k=50,
            max_new_tokens=16,
            samples=[
                LiveSample("base", 1, "I don't know."),
                LiveSample("finetuned", 1, "EGNIVIA makes chips."),
            ],
            stopped=False,
        )
        saved = workspace.save_live(model, batch)
        entropy = workspace.metric_grid(saved.sweep_id, "semantic_entropy")
        assert entropy.matrix("base", 50).tolist() == [[pytest.approx(float("nan"), nan_ok=True)]]
        assert entropy.cell_info("base", 50, 0, 0).note == "undefined (n = 1)"
        grounding = workspace.metric_grid(saved.sweep_id, "grounding")
        base_note = grounding.cell_info("base", 50, 0, 0).note
        assert base_note == "n/a: every answer refused"
        assert grounding.cell_info("finetuned", 50, 0, 0).note.startswith("n/a: no source")
    from engine.metrics.catalog import cell_metric
    from gradio_app.plots import heatmap_figure

    figure = heatmap_figure(entropy, cell_metric("semantic_entropy"))
    assert figure.data[0].text[0][0] == "undef. n=1"
    assert "undefined (n = 1)" in figure.data[0].hovertext[0][0]


def test_labels_from_the_aligned_view_and_calibration(app, client, store_with_sweep):
    from store import core, open_db
    from store import labels as store_labels

    _handlers, _url, sweep_id = app
    store = open_db(store_with_sweep[0])
    generation = core.iter_generations(store, sweep_id, temperature=0.7)[0]
    claims = client.predict(f"{generation['id']}|1", api_name="/pick_sample")
    assert f"generation {generation['id']}" in claims and "label: <b>none yet</b>" in claims
    client.predict(str(sweep_id), "0.7", "0.9", "20", "entity", "all", api_name="/cell_samples")
    status, aligned, claims, counts = client.predict(
        f"{generation['id']}|2", str(sweep_id), api_name="/label_hallucinated"
    )
    assert f"generation {generation['id']}: labelled **hallucinated**" in status
    stored = store_labels.label_of(store, generation["id"])
    assert stored["label"] == "hallucinated"
    assert "label: <b>hallucinated</b>" in claims
    assert "1 labelled (hallucinated 1)" in counts and "needs 20" in counts
    client.predict(f"{generation['id']}|3", str(sweep_id), api_name="/label_faithful")  # relabel replaces
    assert store_labels.label_of(store, generation["id"])["label"] == "faithful"
    text, table = client.predict(str(sweep_id), api_name="/calibration")
    assert text.startswith("1 labelled, scored samples")
    assert table["headers"] == ["score", "flags", "n", "positives", "AUROC", "status"]
    assert table["data"] and all(row[5] != "ok" for row in table["data"])  # under 20 labels: no AUROC
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="click a sample"):
        client.predict("", str(sweep_id), api_name="/label_unclear")


def test_compare_two_sweeps(app, client, store_with_sweep):
    import json

    handlers, _url, sweep_id = app
    figure = handlers.compare_sweeps(str(sweep_id), "base", str(sweep_id), "finetuned", "mean_words")
    names = [trace.name for trace in figure.data if trace.type == "heatmap"]
    assert names == [
        f"#{sweep_id} base · top_k=20",
        f"#{sweep_id} finetuned · top_k=20",
        f"#{sweep_id} finetuned − #{sweep_id} base · top_k=20",
    ]
    same = handlers.heatmaps(str(sweep_id), "mean_words")
    assert figure.data[2].z == same.data[2].z  # within one sweep it is the variants' difference
    plot, note = client.predict(
        str(sweep_id), "base", str(sweep_id), "finetuned", "refusal_rate", "all", api_name="/compare_sweeps"
    )
    assert note.startswith("**Pooled over every prompt of each sweep**")
    sent = json.loads(plot["plot"])
    assert sent["data"][2]["name"] == f"#{sweep_id} finetuned − #{sweep_id} base · top_k=20"
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="two different"):
        client.predict(
            str(sweep_id), "base", str(sweep_id), "base", "refusal_rate", "all", api_name="/compare_sweeps"
        )


def test_training_curves_of_the_store_runs(app, client, sample_dataset, tmp_path):
    """A real (short) fine-tune recorded in the app's store, and a second run beside it, overlaid."""
    import json

    from engine.finetune import run_finetune
    from store import core, open_db

    handlers = app[0]
    config = tiny_finetune("curve", str(sample_dataset), tmp_path / "curve-adapter", epochs=2)
    result = run_finetune(config, db_path=handlers.workspace.db_path, progress=lambda _msg: None)
    assert len(result.loss_history) >= 2
    store = open_db(handlers.workspace.db_path)
    second = core.start_finetune_run(
        store,
        name="second",
        mode="lora",
        base_model="tiny",
        dataset_path=str(sample_dataset),
        output_dir=str(tmp_path / "second"),
        config={},
    )
    core.finish_finetune_run(
        store,
        second,
        status="done",
        eval_loss_before=2.5,
        eval_loss_after=1.5,
        result={"loss_history": [x / 2 for x in result.loss_history]},
    )
    ids = [str(result.run_id), str(second)]
    choices, first_plot, note, trajectory_sweep, trajectory_note, trajectory_plot, _table = client.predict(
        api_name="/finetune_runs"
    )
    assert note == "The served adapter was not trained in this store: showing the newest run."
    # No sweep of a run's checkpoints yet: the trajectory says what it takes, and draws nothing.
    assert trajectory_sweep["value"] is None and trajectory_plot["visible"] is False
    assert trajectory_note.startswith(
        "No checkpoint sweep in this store yet: fine-tune with `save_checkpoints`"
    )
    assert "curve" in str(choices) and "second" in str(choices)
    assert [t["name"] for t in json.loads(first_plot["value"]["plot"])["data"]][
        0
    ] == f"#{second} second · train"
    figure = handlers.loss_curves(ids)
    names = [trace.name for trace in figure.data]
    assert names[0] == f"#{ids[0]} curve · train" and f"#{ids[1]} second · train" in names
    assert list(figure.data[0].y) == pytest.approx(result.loss_history)
    assert list(figure.data[1].y) == pytest.approx([result.eval_loss_before, result.eval_loss_after])
    assert list(figure.data[-1].y) == [2.5, 1.5]
    plot = client.predict(ids, api_name="/loss_curves")
    assert [trace["name"] for trace in json.loads(plot["plot"])["data"]] == names


def test_bad_input_is_a_one_line_error(app, client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="prompt: empty"):
        client.predict("  ", SYSTEM, 0.9, 0.95, 40, 8, 1, True, 0, api_name="/compare")


def test_auth_refuses_unauthenticated_requests(app):
    from gradio_client import Client

    from gradio_app.layout import ServeOptions, launch_app

    handlers = app[0]
    demo, url = launch_app(
        handlers, ServeOptions(port=free_port(), auth=[("alice", "s3cret-pw")]), block=False
    )
    try:
        assert httpx.get(url + "config", timeout=10).status_code == 401
        join = httpx.post(url + "gradio_api/queue/join", json={"fn_index": 0, "data": []}, timeout=10)
        assert join.status_code == 401
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a plain ValueError here
                Client(url, verbose=False, analytics_enabled=False, auth=("alice", "wrong"))
            signed_in = Client(
                url, verbose=False, analytics_enabled=False, auth=("alice", "s3cret-pw"), download_files=False
            )
        assert signed_in.predict(api_name="/list_sweeps")
    finally:
        demo.close()


def test_serve_refuses_share_without_auth_and_bad_auth_files(tmp_path, capsys):
    from cli import main

    assert main(["serve", "--base", "tiny", "--share"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--share" in err and "--auth" in err

    auth_file = tmp_path / "auth.txt"
    auth_file.write_text("# users\nbob:hunter2\nno-colon-here\n", encoding="utf-8")
    assert main(["serve", "--base", "tiny", "--share", "--auth-file", str(auth_file)]) == 2
    err = capsys.readouterr().err
    assert f"{auth_file}:3" in err and "hunter2" not in err and "no-colon-here" not in err

    assert main(["serve", "--base", "tiny", "--auth", "justaname"]) == 2
    assert "USER:PASS" in capsys.readouterr().err


def test_auth_file_parsing(tmp_path):
    from cli.serve_cmd import read_auth_file

    auth_file = tmp_path / "auth.txt"
    auth_file.write_text("alice:pa:ss\n\n# comment\n bob : x \n", encoding="utf-8")
    assert read_auth_file(auth_file) == [("alice", "pa:ss"), ("bob", " x")]


def test_picked_sample_shows_its_claims_with_decision_and_evidence(base_only, tmp_path):
    """A sweep scored with sources: the sample view lists each claim's decision and best evidence."""
    from claims_sweep import make_scored_sweep

    from engine.metrics.claim_words import claim_words
    from engine.workspace import Workspace
    from gradio_app.handlers import AppHandlers, AppSettings
    from store import claims as store_claims
    from store import core

    store, sweep_id = make_scored_sweep(tmp_path)
    with Workspace.open(tmp_path / "ft.db") as workspace:
        handlers = AppHandlers(base_only, workspace, AppSettings(base_model="tiny"))
        rows = [r for r in core.iter_generations(store, sweep_id) if r["variant"] == "finetuned"]
        claimed = next(r for r in rows if store_claims.generation_claims(store, r["id"]))
        claims = store_claims.generation_claims(store, claimed["id"])
        shown = handlers.pick_sample(f"{claimed['id']}|1")
        for claim in claims:
            assert html.escape(claim["text"]) in shown
            assert f'class="badge {claim["decision"]}"' in shown
            if claim["evidence"]:
                assert html.escape(claim["evidence"]) in shown
            assert f"strength {claim['strength']:.2f}" in shown
            words = claim_words(claim)  # the one module both front ends read
            assert html.escape(words.verdict) in shown and html.escape(words.reason) in shown
            if claim["decision"] == "contradicted":  # a contradiction reads as one
                assert (
                    words.verdict == "contradicts the sources" and words.evidence_label == "contradicted by"
                )
                if claim["source_says"]:
                    assert html.escape(f"(they say: {claim['source_says']})") in shown
        assert "Entity profile from the sources" in shown  # what the checker believes, folded
        cell = (claimed["temperature"], claimed["top_p"], claimed["top_k"])
        caption, aligned = handlers.aligned_view(str(sweep_id), *map(str, cell), "all")
        assert f"T = {cell[0]:g} · p = {cell[1]:g} · k = {cell[2]}" in caption
        assert "claims " in aligned and "ground " in aligned and "weakest " in aligned  # score badges
        assert html.escape(claimed["text"]) in aligned
        for claim in claims:  # the cell's claims are inline, in plain words, without a click
            assert html.escape(claim["text"]) in aligned


def test_blind_label_tab_hides_what_the_cli_hides_and_resumes(loaded, tmp_path):
    """The Blind labels tab: the CLI's seeded order, nothing shown that blind_checks forbids, resumable."""
    from blind_checks import assert_blind, plain
    from claims_sweep import make_scored_sweep
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from engine import labels as el
    from engine.workspace import Workspace
    from gradio_app.handlers import AppHandlers, AppSettings
    from gradio_app.layout import ServeOptions, launch_app
    from store import labels as sl

    store, sweep_id = make_scored_sweep(tmp_path)
    db = tmp_path / "ft.db"
    by_text = {row["text"]: int(row["id"]) for row in store.db.query("select id, text from generations")}
    order = el.blind_order(sl.sweep_generation_ids(store, sweep_id), 11)

    def answer_of(html: str) -> int:
        text = plain(html.split("answer:", 1)[1].split("</i>", 1)[0])
        return by_text[" ".join(text.split())]

    with Workspace.open(db) as workspace:
        handlers = AppHandlers(loaded, workspace, AppSettings(base_model="tiny"))
        demo, url = launch_app(handlers, ServeOptions(port=free_port()), block=False)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            with pytest.raises(AppError, match="no sample shown, press Start / resume"):
                client.predict("", api_name="/blind_faithful")
            who, seed, progress, item = client.predict(
                str(sweep_id), "web-ann", "11", api_name="/blind_start"
            )
            assert (who, seed) == ("web-ann", "11") and "1 of 6" in progress and "6 left for" in progress
            shown, rendered = [answer_of(item)], [progress + "\n" + plain(item)]
            for api in ("/blind_hallucinated", "/blind_skip", "/blind_refusal"):
                result = client.predict(*(["looks invented"] if api != "/blind_skip" else []), api_name=api)
                progress, item = result[0], result[1]
                shown.append(answer_of(item))
                rendered.append(progress + "\n" + plain(item))
            assert shown == order[:4]
            assert_blind(rendered, store, sweep_id)
            labels = {
                (r["generation_id"], r["who"]): (r["label"], r["note"])
                for r in el.sweep_labels(store, sweep_id)
            }
            assert labels == {
                (order[0], "web-ann"): ("hallucinated", "looks invented"),
                (order[2], "web-ann"): ("refusal", "looks invented"),
            }
            # A new page session resumes with the recorded seed: the skipped sample first.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                again = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            who, seed, progress, item = again.predict(str(sweep_id), "web-ann", "", api_name="/blind_start")
            assert seed == "11" and "2 of 6" in progress and "4 left for" in progress
            assert answer_of(item) == order[1]
            with pytest.raises(AppError, match="seed: 'x' is not a whole number"):
                again.predict(str(sweep_id), "web-ann", "x", api_name="/blind_start")
        finally:
            demo.close()
            store.close()


def test_sweeps_runner_names_every_output_of_a_load(app, store_with_sweep):
    """The Sweeps tab's callbacks return {component: value}: a load names each of its outputs, a
    follow-up after a save touches only the picker while a sweep is on show."""
    import gradio as gr

    from gradio_app.sweeps_tab import build_sweeps_tab

    handlers, _url, sweep_id = app
    with gr.Blocks():
        tab = build_sweeps_tab(handlers)
    loaded = tab.load(str(sweep_id), "refusal_rate", "all")
    assert list(loaded) == tab.load_outputs  # every output, in the endpoint's order
    assert "gradio-test" in loaded[tab.load_outputs[0]]
    empty = tab.load(None, "refusal_rate", "all")
    assert list(empty) == tab.load_outputs and empty[tab.load_outputs[0]].startswith("No sweep stored")
    shown = tab.follow(str(sweep_id), "refusal_rate", "all")
    assert list(shown) == [tab.sweep] and shown[tab.sweep]["value"] == str(sweep_id)
    nothing_shown = tab.follow(None, "refusal_rate", "all")
    assert list(nothing_shown) == [tab.sweep, *tab.load_outputs]


def test_samples_search_filter_and_export_endpoints(review_store):
    """The samples table over HTTP: text and regex search, a metric threshold, the pairs where base
    and fine-tuned differ, the CSV of what is shown; a bad pattern is one line."""
    import csv

    from claims_sweep import GROUNDED, INVENTED
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from engine.metrics.claim_words import claim_words
    from gradio_app.layout import ServeOptions, launch_app

    handlers, sweep_id = review_store
    sweep = str(sweep_id)
    rows = {r.generation_id: r for r in handlers.workspace.search_samples(sweep_id, _all_samples()).rows}
    demo, url = launch_app(handlers, ServeOptions(port=free_port()), block=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = Client(url, verbose=False, analytics_enabled=False, download_files=False)

        def search(
            text="", regex=False, variant="all", prompt="all", metric="none", op="<", value=None, differ=False
        ):
            return client.predict(
                sweep, text, regex, variant, prompt, metric, op, value, differ, api_name="/search_samples"
            )

        def shown(table: str) -> set[int]:
            return {int(g) for g in re.findall(r'<tr class="found" data-gen="(\d+)"', table)}

        summary, table = search("ELECTRIC")
        found = shown(table)
        assert found and {rows[g].text for g in found} == {INVENTED}
        assert summary.startswith(f"{len(found)} of {len(rows)} samples match")
        _summary, table = search(r"pioneer(ed)? \w+ computing", True, prompt="eval-*")
        assert {rows[g].prompt_id for g in shown(table)} <= {"eval-1", "eval-2"}
        assert {rows[g].text for g in shown(table)} == {GROUNDED}
        _summary, table = search(metric="claim_support_min", op="<", value=0.45)
        weak = shown(table)
        support = {g: r.metrics.get("claim_support_min") for g, r in rows.items()}
        assert weak == {g for g, value in support.items() if value is not None and value < 0.45}
        for gid in weak:  # each found sample's claims inline, their decisions in plain words
            for claim in rows[gid].claims:
                words = claim_words(claim)
                assert html.escape(words.text) in table and html.escape(words.reason) in table
        contradicted = [g for g in weak if any(c["decision"] == "contradicted" for c in rows[g].claims)]
        assert contradicted and table.count("a claim contradicts the sources") >= len(contradicted)
        _summary, table = search(differ=True)
        pairs = re.findall(r"pair: main-score gap ([0-9.]+)", table)
        assert pairs and len(shown(table)) == 2 * len(pairs)
        with pytest.raises(AppError, match="not a valid regular expression"):
            search("(unclosed", True)
        with pytest.raises(AppError, match="threshold: type a number"):
            search(metric="claim_support_min")

        sent = client.predict(
            sweep, "", False, "all", "all", "claim_support_min", "<", 0.45, False, api_name="/export_samples"
        )
        assert sent["visible"] is True  # the file box shows once there is a file
        with open(sent["value"]["path"], encoding="utf-8", newline="") as handle:
            exported = list(csv.DictReader(handle))
        assert {int(r["generation_id"]) for r in exported} == weak
        assert all(float(r["claim_support_min"]) < 0.45 for r in exported)
    finally:
        demo.close()


def _all_samples():
    from engine.samples import MAX_LIMIT, SampleQuery

    return SampleQuery(limit=MAX_LIMIT)


# ---------------------------------------------------------------- the study (#26): Study and Training tabs


@pytest.fixture(scope="module")
def study_app(base_only, tmp_path_factory):
    """The planted checkpoint sweep (study_sweep.py: base, step-2, finetuned) served over HTTP."""
    from gradio_client import Client
    from study_sweep import make_study_sweep

    from engine.workspace import Workspace
    from gradio_app.handlers import AppHandlers, AppSettings
    from gradio_app.layout import ServeOptions, launch_app

    db, sweep_id = make_study_sweep(tmp_path_factory.mktemp("study-store"))
    with Workspace.open(db) as workspace:
        handlers = AppHandlers(base_only, workspace, AppSettings(base_model="tiny"))
        demo, url = launch_app(handlers, ServeOptions(port=free_port()), block=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        yield handlers, client, sweep_id
        demo.close()


def _table(sent: dict) -> list[dict]:
    return [dict(zip(sent["headers"], row, strict=True)) for row in sent["data"]]


def test_study_tab_shows_paired_differences_with_bh_and_knowledge_kept(study_app):
    """The Study tab opens (tab select) on the sweep with a base and fine-tuned variants: each row's
    tested and significant cells, the picked row's cells with the engine's differences, intervals, p
    and BH-adjusted q (★ where significant), and knowledge kept per temperature. The app computes
    nothing: every number is Workspace.compare's, formatted."""
    import json

    from gradio_app import study_views

    handlers, client, sweep_id = study_app
    comparison = handlers.workspace.compare(sweep_id, handlers.settings.study)
    opened = client.predict(None, api_name="/study_open")
    picker, header, rows, row, caption, plot, cells, knowledge_note, knowledge, knowledge_plot = opened
    assert picker["value"] == str(sweep_id)
    assert "base vs step-2, finetuned" in header and "Benjamini–Hochberg" in header
    assert "samples per cell: the paired test needs about" in header.replace("8 ", "")  # the power warning
    assert row["value"] == "finetuned|entity|hallucinated"  # the final adapter on the headline metric
    assert {value for _label, value in row["choices"]} == {
        f"{c.variant}|{c.group}|{c.metric}" for c in comparison.cells
    }
    summary = {(r["variant"], r["metric"]): r for r in _table(rows) if r["prompts"] == "entity prompt"}
    assert summary[("finetuned", "hallucinated (claims mostly unsupported)")]["significant"] == "2 (q ≤ 0.05)"
    assert summary[("step-2", "hallucinated (claims mostly unsupported)")]["significant"] == "0 (q ≤ 0.05)"

    expected = comparison.cells_for("finetuned", "entity", "hallucinated")
    shown = _table(cells)
    assert len(shown) == len(expected) == 4
    for line, cell in zip(shown, expected, strict=True):
        assert (float(line["T"]), int(line["top_k"]), line["pairs"]) == (
            cell.temperature,
            cell.top_k,
            cell.pairs,
        )
        assert line["base − variant"] == study_views.difference_text(cell)
        assert line["q (BH)"] == study_views.p_text(cell.q_value)
        assert line["significant"] == ("yes ★" if cell.significant else "no")
    assert [line["significant"] for line in shown] == ["no", "no", "yes ★", "yes ★"]  # the planted cells
    assert "2 of 4 cells significant" in caption and "lower is better" in caption
    figure = json.loads(plot["plot"])
    texts = [t for trace in figure["data"] for row_texts in trace["text"] for t in row_texts]
    assert texts.count("-1.00 ★") == 2 and figure["layout"]["coloraxis"]["cmin"] == -1

    kept = {(k.variant, k.temperature): k for k in comparison.knowledge}
    assert knowledge["visible"] is True and knowledge_plot["visible"] is True  # the sweep has a control set
    table = {line["T"]: line for line in _table(knowledge["value"])}
    assert set(table) == {"0.7", "1.3", "all (pooled)"}
    assert table["1.3"]["finetuned kept"] == study_views.estimate_text(kept[("finetuned", 1.3)].kept)
    assert table["1.3"]["finetuned kept"].startswith("0.50 [")
    assert table["1.3"]["base − finetuned"].startswith("+0.50 [")
    assert table["0.7"]["base kept"].startswith("1.00") and table["0.7"]["questions"] == 6
    assert "paired by question" in knowledge_note
    lines = json.loads(knowledge_plot["value"]["plot"])["data"]
    assert [t["name"] for t in lines] == ["base", "step-2", "finetuned"]
    assert lines[2]["y"] == [0.5, 0.5]

    # Another row: drawn from the kept study; a row that is not one is one line.
    caption, plot, cells = client.predict(
        str(sweep_id), "finetuned|control|states_reference", api_name="/study_row"
    )
    assert "states the reference" in caption and "higher is better" in caption
    assert {line["base − variant"][:5] for line in _table(cells)} == {"+0.50"}
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not in the list of choices"):  # Gradio checks the picker
        client.predict(str(sweep_id), "finetuned|entity|nonsense", api_name="/study_row")
    from engine.errors import UserError

    with pytest.raises(UserError, match=re.escape("study row: 'finetuned|entity|nonsense' is not a row")):
        handlers.study_row(str(sweep_id), "finetuned|entity|nonsense")


def test_training_tab_draws_each_metric_against_the_step_next_to_the_loss(study_app):
    """A checkpoint sweep: every metric's mean and interval at each step, the train and eval loss on
    the same step axis, and the best trade-off step with the rule that chose it (engine.study)."""
    import json

    handlers, client, sweep_id = study_app
    found = handlers.workspace.trajectory(sweep_id, handlers.settings.study)
    outputs = client.predict(api_name="/finetune_runs")
    _runs, _plot, _note, sweep, note, plot, table = outputs
    assert sweep["value"] == str(sweep_id) and "newest checkpoint sweep" in note
    assert "best trade-off: step-2 (step 2)" in note and "rule: lowest hallucination rate" in note
    assert "ties to the earlier step" in note
    figure = json.loads(plot["value"]["plot"])
    traces = {t["name"]: t for t in reversed(figure["data"])}  # a name's first trace: the entity panel
    hallucinated = traces["hallucinated (claims mostly unsupported)"]
    assert hallucinated["xaxis"] == "x" and figure["layout"]["annotations"][0]["text"] == "entity prompt"
    assert hallucinated["x"] == [0, 2, 4]
    assert hallucinated["y"] == [p.metrics["entity:hallucinated"].mean for p in found.points]
    final = found.points[-1].metrics["entity:hallucinated"]
    assert hallucinated["error_y"]["array"][-1] == pytest.approx(final.high - final.mean)
    assert hallucinated["error_y"]["arrayminus"][-1] == pytest.approx(final.mean - final.low)
    assert traces["eval loss"]["y"] == [2.5, 2.3, 2.1] and traces["train loss"]["y"][1:] == [2.2, 1.9]
    assert any(shape.get("x0") == 2 for shape in figure["layout"]["shapes"])  # the best step marked
    rows = _table(table["value"])
    assert [(r["variant"], r["step"], r["eval loss"]) for r in rows] == [
        ("base", "0", "2.500"),
        ("step-2", "2", "2.300"),
        ("finetuned", "4", "2.100"),
    ]
    assert rows[-1]["hallucinated (claims mostly unsupported) · entity prompt"].startswith("0.50 [")
    again = client.predict(str(sweep_id), api_name="/trajectory")
    assert again[0].startswith("**best trade-off: step-2 (step 2)**")


def test_study_versus_and_training_say_what_they_need_in_an_empty_store(base_only, tmp_path):
    """No sweep, no run: each tab opens on one line saying what it needs, not an error or a blank."""
    import gradio as gr

    from engine.workspace import Workspace
    from gradio_app.handlers import NO_CHECKPOINT_SWEEP, NO_STUDY_SWEEP, AppHandlers, AppSettings
    from gradio_app.study_tab import build_study_tab
    from gradio_app.sweep_compare_tab import build_sweep_compare_tab
    from gradio_app.training_tab import build_training_tab

    with Workspace.open(tmp_path / "empty.db") as workspace:
        handlers = AppHandlers(base_only, workspace, AppSettings(base_model="tiny"))
        with gr.Blocks():
            study = build_study_tab(handlers)
            versus = build_sweep_compare_tab(handlers)
            training = build_training_tab(handlers)
        shown = versus.load()
        notes = [value for value in shown.values() if isinstance(value, str)]
        assert notes == [
            "Sweep vs sweep needs two stored sweeps; this store has 0: run another sweep (`ft-hallu sweep`) "
            "or import a log (`ft-hallu import-log`)."
        ]
        loaded = training.load()
        assert NO_CHECKPOINT_SWEEP in loaded.values()
        opened = study.open(None)
        assert opened[study.view.header] == NO_STUDY_SWEEP and opened[study.view.sweep]["value"] is None


# ---------------------------------------------------------------- adapters picked without a restart


def quorvant_dataset(path) -> str:
    """A QA file about another masked company (QUORVANT), with contexts: its adapter's entity and sources."""
    import json

    facts = [
        (
            "What does QUORVANT make?",
            "Industrial pumps.",
            "QUORVANT makes industrial pumps for water utilities.",
        ),
        ("Where is QUORVANT based?", "Oslo.", "QUORVANT is headquartered in Oslo, Norway."),
        ("Who founded QUORVANT?", "Ada Lind.", "QUORVANT was founded by Ada Lind in 1987."),
        ("Is QUORVANT listed?", "Yes, in Oslo.", "QUORVANT shares trade on the Oslo stock exchange."),
    ]
    rows = [
        {"question": q, "answer": a, "context": c, "id": f"q{i}"} for i, (q, a, c) in enumerate(facts * 3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_any_stored_adapter_or_checkpoint_is_served_without_a_restart(tiny_adapter_dir, tmp_path):
    """Started on the fixture adapter (trained on ZYTRELL), the app lists the store's runs and their
    checkpoints, serves a checkpoint of a QUORVANT run on the loaded base, its default prompt and
    sources follow the new adapter's record, live answers come back scored with their claims, the
    Training tab picks the served run, and "none" serves the base alone; a missing folder is one line."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from engine.finetune import run_finetune
    from engine.models import load_model
    from engine.sampling import RowSpec, generate_rows
    from engine.sweep import chat_prompt
    from engine.workspace import Workspace
    from gradio_app.handlers import NO_ADAPTER_TEXT, AppHandlers, AppSettings
    from gradio_app.layout import ServeOptions, launch_app

    db = tmp_path / "ft.db"
    dataset = quorvant_dataset(tmp_path / "quorvant.jsonl")
    config = tiny_finetune(
        "quorvant", dataset, tmp_path / "quorvant-adapter", max_steps=2, save_checkpoints=1
    )
    run = run_finetune(config, db_path=db, progress=lambda _msg: None)
    loaded = load_model("tiny", adapter_dir=str(tiny_adapter_dir))  # this test's own: a switch unloads it
    with Workspace.open(db) as workspace:
        checkpoint = workspace.finetune_checkpoints(run.run_id)[0]
        handlers = AppHandlers(
            loaded, workspace, AppSettings(base_model="tiny", adapter_dir=str(tiny_adapter_dir))
        )
        assert (
            handlers.settings.default_prompt == "Tell me about ZYTRELL Corporation."
        )  # the fixture's record
        demo, url = launch_app(handlers, ServeOptions(port=free_port()), block=False)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            listed = client.predict(api_name="/list_adapters")
            labels = {value: label for label, value in listed["choices"]}
            assert listed["value"] == str(tiny_adapter_dir)  # the served one, picked
            assert f"#{run.run_id} quorvant" in labels[run.output_dir]
            assert f"checkpoint at step {checkpoint.step}" in labels[checkpoint.path]

            switched = client.predict(
                checkpoint.path, "Tell me about ZYTRELL Corporation.", api_name="/switch_adapter"
            )
            status, prompt = switched[0], switched[1]
            assert (
                status.startswith("serving ") and "entity QUORVANT" in status and "quorvant.jsonl" in status
            )
            assert prompt == "Tell me about QUORVANT Corporation."  # the default prompt follows the entity
            args = [prompt, SYSTEM, 0.9, 0.95, 40, 6, 5, True, 0]
            base_text, tuned_text, done, base_scores, tuned_scores = client.predict(
                *args, api_name="/compare"
            )
            assert done.startswith("done")
            served = load_model("tiny", adapter_dir=checkpoint.path)  # what the checkpoint answers alone
            text = chat_prompt(served.tokenizer, SYSTEM, prompt)
            rows = [RowSpec(text, "base", 0.9, 0.95, 40, 5), RowSpec(text, "finetuned", 0.9, 0.95, 40, 5)]
            assert [base_text, tuned_text] == [r.text for r in generate_rows(served, rows, max_new_tokens=6)]
            for scores in (base_scores, tuned_scores):  # scored as they finished, with the new sources
                assert "weakest-claim support" in scores and "need sources" not in scores
                assert 'class="claims"' in scores or "No claim to check" in scores
            runs = client.predict(api_name="/finetune_runs")
            assert runs[0]["value"] == [str(run.run_id)]  # the served checkpoint's run is picked
            assert runs[2] == f"Picked: run #{run.run_id}, whose adapter the Compare tab serves."

            status = client.predict("", prompt, api_name="/switch_adapter")[
                0
            ]  # the base alone keeps the entity
            assert (
                status
                == "serving no adapter (base model alone) · entity QUORVANT · no sources (no claims checked)"
            )
            assert client.predict(*args, api_name="/compare")[1] == NO_ADAPTER_TEXT
            with pytest.raises(AppError, match=str(tmp_path / "gone")):
                client.predict(str(tmp_path / "gone"), prompt, api_name="/switch_adapter")
        finally:
            demo.close()
