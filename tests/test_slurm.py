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
from engine import launch as L
from engine.errors import UserError
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
    spec = L.build_spec(config, settings, name=name, log_dir=tmp_path / "logs", workdir=tmp_path)
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
    spec = L.build_spec(config, settings, name=name, log_dir=tmp_path / "logs", workdir=folder)
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
        L.build_spec(config, settings, name=f"ok\ntouch {markers}/newline", log_dir=tmp_path / "logs")
    assert list(markers.iterdir()) == []


def test_impossible_request_is_a_clear_error_and_no_row(slurm, tmp_path):
    with pytest.raises(UserError, match="sbatch rejected .*invalid partition"):
        submit(slurm, tmp_path, shell_command("true"), partition="nosuch")
    with pytest.raises(UserError, match="sbatch rejected"):
        submit(slurm, tmp_path, shell_command("true"), gpus=1)  # this cluster has no GPUs
    assert job_store.list_jobs(slurm) == []


@pytest.mark.slow  # a real trl run inside the job: ~20 s alone, up to ~60 s on a busy 2-core machine
def test_tiny_finetune_completes_with_adapter_on_disk(slurm, tmp_path, monkeypatch, capsys):
    pytest.importorskip("engine.finetune", reason="engine.finetune not available yet")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    config = write_finetune_config(tmp_path / "cfg")
    cluster = tmp_path / "cluster.toml"
    cluster.write_text('cpus = 1\ntime = "00:10:00"\nsetup = ["export OMP_NUM_THREADS=2"]\n')
    code = cli_main(
        ["--db", str(slurm.path), "launch", "--config", str(config), "--cluster", str(cluster),
         "--log-dir", str(tmp_path / "logs")]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    job = job_store.list_jobs(slurm)[0]
    job = L.wait(slurm, L.Job.from_row(job), timeout=240, poll_seconds=0.5)
    log = Path(job.log_path).read_text()
    assert (job.state, job.exit_code) == ("COMPLETED", 0), log[-3000:]
    adapter = Path(job.output_dir)
    assert adapter == tmp_path / "cfg" / "adapter"
    assert (adapter / "adapter_config.json").exists()
    assert any(adapter.glob("adapter_model.*"))
    for text in (log, Path(job.script_path).read_text(), str(job_store.get_job(slurm, job.id))):
        assert FAKE_KEY not in text
    # --db travelled with the job: the fine-tune recorded its run in the launching store.
    [run] = core.list_finetune_runs(slurm)
    assert run["status"] == "completed" and run["output_dir"] == str(adapter)
