"""Launching through a real single-node Slurm that this module starts (root only; skips otherwise).

CI sets FT_HALLU_REQUIRE_SLURM=1 so that a cluster which cannot start fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import main as cli_main
from engine import job_kinds, sweep
from engine import jobs as L
from engine.errors import UserError
from engine.jobs import jobrun
from store import core
from store import jobs as job_store
from store.db import open_db

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import REQUIRE_ENV, SlurmUnavailable, remove_cluster_dir, start_cluster  # noqa: E402
from test_launch import FAKE_KEY, job_args, shell_command, write_finetune_config  # noqa: E402

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="session")
def slurm_cluster():
    try:
        cluster = start_cluster()
    except SlurmUnavailable as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but Slurm could not start: {exc}")
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()
    remove_cluster_dir(cluster)


@pytest.fixture
def slurm(slurm_cluster, monkeypatch, tmp_path):
    """SLURM_CONF for code that shells out itself, and a store in tmp_path."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    monkeypatch.setenv("PATH", slurm_cluster.env["PATH"])
    store = open_db(tmp_path / "ft-hallu.db")
    yield store
    store.close()


def submit(
    store, tmp_path: Path, command: tuple[str, ...] = (), name: str = "slurm-test", **cluster
) -> L.Job:
    config = write_finetune_config(tmp_path / "cfg")
    settings = L.ClusterSettings(command=command, **cluster)
    spec = job_kinds.build_spec(config, settings, name=name, log_dir=tmp_path / "logs", workdir=tmp_path)
    return L.launch(store, spec, L.SlurmLauncher())


def wait_for(store, job: L.Job, states: set[str], timeout: float = 30.0) -> L.Job:
    deadline = time.monotonic() + timeout
    while True:
        job = L.refresh(store, job)
        if job.state in states or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_failing_job_is_failed_with_exit_code_and_log_tail(slurm, tmp_path):
    job = submit(slurm, tmp_path, shell_command("echo preparing; echo 'CUDA out of memory' >&2; exit 3"))
    assert job.launcher == "slurm" and job.job_id.isdigit() and job.state == "PENDING"
    job = L.wait(slurm, job, timeout=30, poll_seconds=0.2)
    assert (job.state, job.exit_code) == ("FAILED", 3)
    assert L.tail(job, 1) == "CUDA out of memory"
    # Each record Slurm keeps after the queue agrees: scontrol (MinJobAge) and the jobcomp file.
    launcher = L.SlurmLauncher()
    assert launcher._from_scontrol(job) == L.JobStatus("FAILED", 3, "NonZeroExitCode")
    assert launcher._from_jobcomp(job) == L.JobStatus("FAILED", 3, None)


def test_long_job_is_cancelled_from_the_cli(slurm, tmp_path, capsys):
    job = submit(slurm, tmp_path, shell_command("echo sleeping; sleep 600"), name="long")
    job = wait_for(slurm, job, {"RUNNING"})
    assert job.state == "RUNNING" and job.started_at
    assert cli_main(["--db", str(slurm.path), "jobs"]) == 0
    assert f"slurm:{job.job_id}" in capsys.readouterr().out
    assert cli_main(["--db", str(slurm.path), "cancel", f"slurm:{job.job_id}"]) == 0
    assert capsys.readouterr().out.strip() == f"job {job.id}: slurm:{job.job_id} CANCELLED"
    job = L.get_job(slurm, job.id)
    assert job.state == "CANCELLED" and job.exit_code is None
    assert "CANCELLED" in L.tail(job, 5)
    with pytest.raises(UserError, match="already finished"):
        L.cancel(slurm, job)


def test_hostile_names_and_paths_cannot_inject(slurm, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    record = tmp_path / "argv.txt"
    name = f'x"; touch {markers}/name; echo "$(touch {markers}/subst)`touch {markers}/tick`\''
    folder = tmp_path / f"cfg;touch {markers}/semi;$(touch {markers}/dir)"
    config = write_finetune_config(folder)
    settings = L.ClusterSettings(command=shell_command(f'printf "%s\\n" "$@" > {shlex.quote(str(record))}'))
    spec = job_kinds.build_spec(config, settings, name=name, log_dir=tmp_path / "logs", workdir=folder)
    job = L.wait(slurm, L.launch(slurm, spec, L.SlurmLauncher()), timeout=30, poll_seconds=0.2)
    assert (job.state, job.exit_code) == ("COMPLETED", 0), L.tail(job)
    assert record.read_text().splitlines() == job_args(spec)
    assert list(markers.iterdir()) == []
    # Slurm got the name verbatim, quotes and all.
    shown = subprocess.run(
        ["squeue", "-h", "--states=all", "-j", job.job_id, "-o", "%j"], capture_output=True, text=True
    )
    assert shown.stdout.strip() == name
    # A newline could start a shell line after the #SBATCH header: it never gets that far.
    with pytest.raises(UserError, match="job name"):
        job_kinds.build_spec(config, settings, name=f"ok\ntouch {markers}/newline", log_dir=tmp_path / "logs")
    assert list(markers.iterdir()) == []


def test_impossible_request_is_a_clear_error_and_no_row(slurm, tmp_path):
    with pytest.raises(UserError, match="sbatch rejected .*invalid partition"):
        submit(slurm, tmp_path, shell_command("true"), partition="nosuch")
    with pytest.raises(UserError, match="sbatch rejected"):
        submit(slurm, tmp_path, shell_command("true"), gpus=1)  # this cluster has no GPUs
    assert job_store.list_jobs(slurm) == []


def assert_store_never_opened(job: L.Job, store) -> None:
    """From the job's own record of its writes: no SQLite at all, nothing next to the login store."""
    audits = jobrun.read_audits(job.job_dir)
    assert audits, f"job {job.id} left no audit record in {job.job_dir}"
    for audit in audits:
        assert audit["sqlite_connections"] == [], audit
        assert not [path for path in audit["written"] if path.startswith(str(store.path))], audit
    script = Path(job.script_path).read_text()
    assert str(store.path) not in script and "--db" not in script


def stored_texts(store, sweep_id: int) -> dict[tuple, str]:
    rows = core.iter_generations(store, sweep_id)
    keys = [
        (r["variant"], r["temperature"], r["top_p"], r["top_k"], r["prompt_id"], r["sample_index"])
        for r in rows
    ]
    assert len(keys) == len(set(keys))  # the unique index makes duplicates impossible; say so anyway
    return {key: r["text"] for key, r in zip(keys, rows, strict=True)}


def sweep_toml(
    folder: Path, *, samples: int, tokens: int, adapter: str = "", top_ks: str = "[0, 20]"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.toml"
    path.write_text(
        '[sweep]\nname = "array"\nbase_model = "tiny"\nentity_name = "ZYTRELL"\n'
        f'adapter = "{adapter}"\nsamples_per_cell = {samples}\n'
        f"max_new_tokens = {tokens}\nmin_new_tokens = {tokens}\nbatch_size = 1\ncompute_metrics = false\n"
        f"[sweep.grid]\ntemperatures = [0.7, 1.3]\ntop_ps = [0.9]\ntop_ks = {top_ks}\n"
    )
    return path


ONE_CPU = L.ClusterSettings(cpus=1, setup=("export OMP_NUM_THREADS=1",))


def test_three_task_array_sweep_equals_a_local_run(slurm, tmp_path, tiny_model_dir):
    config = sweep_toml(tmp_path / "cfg", samples=3, tokens=4)  # 4 cells x 3 samples: 12 rows, 4 per task
    job = job_kinds.launch_sweep(slurm, config, ONE_CPU, shards=3, log_dir=tmp_path / "jobs")
    assert (job.array, job.shards, job.kind) == ("0-2", 3, "sweep")
    job = L.wait(slurm, job, timeout=240, poll_seconds=0.5)
    assert (job.state, job.exit_code) == ("COMPLETED", 0), L.tail(job, 30)
    assert sorted(job.tasks) == ["0", "1", "2"] and {t["state"] for t in job.tasks.values()} == {"COMPLETED"}
    # Seeing the job end ingested it: exactly the planned rows, the same texts as a local run.
    [stored] = core.list_sweeps(slurm)
    assert stored["expected_rows"] == stored["generation_count"] == 12 and stored["status"] == "completed"
    local = sweep.run_sweep(sweep.load_sweep_config(config), db_path=tmp_path / "local.db")
    local_store = open_db(tmp_path / "local.db")
    assert stored_texts(slurm, stored["id"]) == stored_texts(local_store, local.sweep_id)
    assert core.get_sweep(local_store, local.sweep_id)["config_hash"] == stored["config_hash"]
    local_store.close()
    assert L.ingest(slurm, job).rows_added == 0  # a second ingest adds nothing
    assert_store_never_opened(job, slurm)
    assert "== task 2 ==" in L.tail(job, 3)


def test_shard_cancelled_midway_then_resubmitted_completes_without_duplicates(
    slurm, tmp_path, tiny_model_dir, capsys
):
    config = sweep_toml(tmp_path / "cfg", samples=6, tokens=32, top_ks="[0]")  # 12 rows, 6 per task
    job = job_kinds.launch_sweep(slurm, config, ONE_CPU, shards=2, log_dir=tmp_path / "jobs")
    results = Path(job.job_dir) / "results"
    deadline = time.monotonic() + 300  # generous: a busy 2-core machine starts Python slowly
    while not any(
        p.name.startswith("shard-001.") and p.read_text().count('"kind": "row"')
        for p in results.glob("*.jsonl")
    ):
        if time.monotonic() > deadline:
            job = L.refresh(slurm, job)
            raise AssertionError(f"shard 1 wrote no row: {job.state} {job.tasks}\n{L.tail(job, 30)}")
        time.sleep(0.05)
    # Progress from afar, read from the results files while the shards write them.
    running = L.progress(job)
    assert 0 < running.done < running.planned == 12 and running.rows_per_second > 0, running
    assert cli_main(["--db", str(slurm.path), "jobs", "--no-refresh"]) == 0
    assert "progress: " in capsys.readouterr().out
    job = L.cancel(slurm, job, task=1)  # scancel <array>_1 while it is part-way through
    job = L.wait(slurm, job, timeout=240, poll_seconds=0.5)
    assert job.tasks["1"]["state"] == "CANCELLED" and job.state == "CANCELLED", job.tasks
    [stored] = core.list_sweeps(slurm)
    partial = stored["generation_count"]
    assert stored["status"] == "interrupted" and 6 < partial < 12, partial  # shard 0 and part of shard 1
    assert L.ingest(slurm, job).rows_added == 0
    with pytest.raises(UserError, match="--task 2: job .* has shards 0-1"):
        L.resubmit(slurm, job, 2)

    again = L.resubmit(slurm, job, 1)
    assert (again.parent_id, again.array, again.job_dir) == (job.id, "1", job.job_dir)
    again = L.wait(slurm, again, timeout=240, poll_seconds=0.5)
    assert (again.state, again.exit_code) == ("COMPLETED", 0), L.tail(again, 30, task=1)
    assert again.ingest["rows_added"] == 12 - partial  # only the rows the cancelled attempt had not finished
    [stored] = core.list_sweeps(slurm)
    assert stored["generation_count"] == 12 and stored["status"] == "completed"
    texts = stored_texts(slurm, stored["id"])  # one row per planned key
    assert len(texts) == 12 and all(texts.values())
    assert len(list(results.glob("shard-001.*.jsonl"))) == 2  # one file per attempt, none rewritten
    assert_store_never_opened(again, slurm)


@pytest.mark.slow  # a real trl run inside the job: ~20 s alone, up to ~60 s on a busy 2-core machine
def test_finetune_then_dependent_sweep_both_complete_and_are_ingested(
    slurm, tmp_path, monkeypatch, capsys, tiny_model_dir
):
    pytest.importorskip("engine.finetune", reason="engine.finetune not available yet")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    config = write_finetune_config(tmp_path / "cfg")
    cluster = tmp_path / "cluster.toml"
    cluster.write_text('cpus = 1\ntime = "00:10:00"\nsetup = ["export OMP_NUM_THREADS=2"]\n')
    db = ["--db", str(slurm.path)]
    common = ["--cluster", str(cluster), "--log-dir", str(tmp_path / "logs")]
    assert cli_main([*db, "launch", "--config", str(config), *common]) == 0, capsys.readouterr().err
    [ft_row] = job_store.list_jobs(slurm)
    # The sweep of base vs the adapter that job will write, queued behind it in the same breath.
    sweep_config = sweep_toml(
        tmp_path / "sweep", samples=1, tokens=4, adapter=str(tmp_path / "cfg" / "adapter")
    )
    code = cli_main([*db, "launch", "sweep", "--config", str(sweep_config), "--after", str(ft_row["id"]),
                     "--shards", "2", *common])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"after:  slurm:{ft_row['job_id']} completes" in out.out
    sweep_job = L.Job.from_row(job_store.list_jobs(slurm)[0])
    assert sweep_job.kind == "sweep" and sweep_job.depends_on == ft_row["job_id"]

    job = L.wait(slurm, L.Job.from_row(ft_row), timeout=240, poll_seconds=0.5)
    log = Path(job.log_path).read_text()
    assert (job.state, job.exit_code) == ("COMPLETED", 0), log[-3000:]
    adapter = Path(job.output_dir)
    assert adapter == tmp_path / "cfg" / "adapter"
    assert (adapter / "adapter_config.json").exists()
    assert any(adapter.glob("adapter_model.*"))
    for text in (log, Path(job.script_path).read_text(), str(job_store.get_job(slurm, job.id))):
        assert FAKE_KEY not in text
    # The run record came back as a file and was ingested when the job was seen to end.
    [run] = core.list_finetune_runs(slurm)
    assert run["status"] == "completed" and run["output_dir"] == str(adapter)
    assert run["eval_loss_after"] is not None and job.ingest["finetune_run_id"] == run["id"]
    assert_store_never_opened(job, slurm)

    sweep_job = L.wait(slurm, sweep_job, timeout=240, poll_seconds=0.5)
    assert (sweep_job.state, sweep_job.exit_code) == ("COMPLETED", 0), L.tail(sweep_job, 30)
    [stored] = core.list_sweeps(slurm)
    assert stored["generation_count"] == stored["expected_rows"] == 4 * 2 and stored["status"] == "completed"
    assert {r["variant"] for r in core.iter_generations(slurm, stored["id"])} == {"base", "finetuned"}
    assert_store_never_opened(sweep_job, slurm)
    assert cli_main([*db, "jobs"]) == 0
    listing = capsys.readouterr().out
    assert "ingested: fine-tune run" in listing and "ingested: sweep 1 8/8 rows completed" in listing
    assert cli_main([*db, "ingest", str(sweep_job.id)]) == 0
    assert "0 new rows" in capsys.readouterr().out


# ------------------------------------------------------------------ fine-tunes over several processes


def ddp_cluster(**values) -> L.ClusterSettings:
    """Two processes share this machine's CPUs; torchrun's own threads default is kept explicit."""
    return L.ClusterSettings(setup=("export OMP_NUM_THREADS=1",), **values)


@pytest.mark.slow  # a 2-process trl run inside the job: ~20 s alone, ~70 s on a busy 2-core machine
def test_two_process_ddp_under_slurm_is_one_launcher_and_its_adapter_sweeps(slurm, tmp_path, tiny_model_dir):
    """One node: one task (torchrun) starting 2 processes, the shape every node of a multi-node job
    has; 2 tasks of one process each would need a rendezvous per task instead."""
    from test_distributed import assert_one_ddp_run, ddp_config, sweep_with

    config = ddp_config(tmp_path / "cfg", extra='distributed = "ddp"\nprocesses_per_node = 2\n')
    job = job_kinds.launch_finetune(
        slurm, config, ddp_cluster(cpus=2), launcher=L.SlurmLauncher(), log_dir=tmp_path / "jobs",
        workdir=tmp_path,
    )  # fmt: skip
    script = Path(job.script_path).read_text()
    assert "#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n" in script and "exec srun --nodes=1" in script
    job = L.wait(slurm, job, timeout=600, poll_seconds=0.5)
    assert_one_ddp_run(job, slurm)
    assert_store_never_opened(job, slurm)
    sweep_with(Path(job.output_dir), tmp_path)


@pytest.fixture(scope="module")
def two_nodes():
    """A second cluster: two slurmd on this machine, named by two loopback addresses."""
    try:
        cluster = start_cluster(nodes=("127.0.0.1", "127.0.0.2"))
    except SlurmUnavailable as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but a 2-node Slurm could not start: {exc}")
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()
    remove_cluster_dir(cluster)


@pytest.mark.slow  # as above, plus a second cluster (~3 s to start, ~4 s to stop)
def test_ddp_over_two_nodes_meets_at_the_first_node(two_nodes, monkeypatch, tmp_path, tiny_model_dir):
    """srun starts one torchrun on each of 2 nodes (both on this machine); they meet at the c10d
    rendezvous on the first node of the allocation and train as ranks 0 and 1."""
    from test_distributed import assert_one_ddp_run, ddp_config

    monkeypatch.setenv("SLURM_CONF", str(two_nodes.conf))
    monkeypatch.setenv("PATH", two_nodes.env["PATH"])
    store = open_db(tmp_path / "ft-hallu.db")
    config = ddp_config(tmp_path / "cfg", extra='distributed = "ddp"\nnodes = 2\nprocesses_per_node = 1\n')
    job = job_kinds.launch_finetune(
        store, config, ddp_cluster(cpus=1), launcher=L.SlurmLauncher(), log_dir=tmp_path / "jobs",
        workdir=tmp_path,
    )  # fmt: skip
    job = L.wait(store, job, timeout=600, poll_seconds=0.5)
    result = assert_one_ddp_run(job, store)
    assert result["world_size"] == 2
    log = Path(job.log_path).read_text()
    first = two_nodes.node_names[0]
    assert f"ft-hallu: rendezvous at {first}:" in log and "ddp over 2 processes (2 node(s) x 1)" in log
    hosts = sorted(p.read_text().split()[1] for p in (Path(job.job_dir) / "ranks").glob("rank-*.exit"))
    assert hosts == sorted(two_nodes.node_names)  # one rank on each node
    store.close()
