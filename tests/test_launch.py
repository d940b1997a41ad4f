"""Launching without Slurm: settings validation, script rendering, injection, the local launcher, the CLI."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import launch as L
from cli import main as cli_main
from engine.errors import UserError
from store import jobs as job_store
from store.db import open_db

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "engine" / "data" / "sample_qa.jsonl"
FAKE_KEY = "sk-test-FAKE-0123456789abcdef"


def write_finetune_config(folder: Path, name: str = "tiny-test") -> Path:
    """A tiny fine-tune TOML with absolute paths (the job may run from any folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ft.toml"
    path.write_text(
        "[finetune]\n"
        f"name = {json.dumps(name)}\n"
        'base_model = "tiny"\n'
        f"dataset = {json.dumps(str(SAMPLE))}\n"
        f"output_dir = {json.dumps(str(folder / 'adapter'))}\n"
        'mode = "lora"\n'
        "epochs = 1\n"
        "max_steps = 2\n"
        "per_device_batch_size = 8\n"
        "gradient_accumulation_steps = 1\n"
        "gradient_checkpointing = false\n"
        "logging_steps = 1\n"
    )
    return path


def shell_command(script: str) -> tuple[str, ...]:
    """A job command running ``script`` under sh; the fine-tune arguments arrive as $1..$n."""
    return ("/bin/sh", "-c", script, "job")


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


# ------------------------------------------------------------------ settings


def test_example_cluster_settings_load():
    settings = L.load_cluster_settings(REPO / "configs" / "cluster.example.toml")
    assert settings.partition == "gpu"
    assert settings.gpus == 1 and settings.cpus == 8
    assert settings.time == "08:00:00" and settings.mem == "64G"
    assert settings.keep_env == ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('partition = "gpu; touch /tmp/x"', "partition"),
        ('account = "$(whoami)"', "account"),
        ('qos = "a\\"b"', "qos"),
        ('time = "8 hours"', "time"),
        ('mem = "lots"', "mem"),
        ("gpus = -1", "gpus"),
        ('cpus = "8"', "cpus"),
        ('extra_sbatch = ["--constraint=a100\\necho pwned"]', "extra_sbatch[0]"),
        ('extra_sbatch = ["constraint=a100"]', "extra_sbatch[0]"),
        ('setup = ["module load cuda\\ntouch /tmp/x"]', "setup[0]"),
        ('setup = ["export OPENAI_API_KEY=sk-123"]', "setup[0]"),
        ('log_dir = "/scratch/%u"', "log_dir"),
        ('partiton = "gpu"', "unknown field 'partiton'; did you mean 'partition'?"),
        ("setup = 'module load x'", "setup = \"module load x\": must be a list of strings"),
    ],
)
def test_bad_cluster_settings_name_file_and_field(tmp_path, text, field):
    path = tmp_path / "cluster.toml"
    path.write_text(text + "\n")
    with pytest.raises(UserError) as caught:
        L.load_cluster_settings(path)
    message = str(caught.value)
    assert str(path) in message and field in message
    assert "\n" not in message


def test_invalid_toml_and_missing_file_are_user_errors(tmp_path):
    broken = tmp_path / "cluster.toml"
    broken.write_text("partition = \n")
    with pytest.raises(UserError, match="invalid TOML"):
        L.load_cluster_settings(broken)
    with pytest.raises(UserError, match="no such file"):
        L.load_cluster_settings(tmp_path / "nope.toml")


def test_build_spec_reads_the_finetune_config(tmp_path):
    config = write_finetune_config(tmp_path / "cfg")
    spec = L.build_spec(config, L.ClusterSettings(), log_dir=tmp_path / "logs", workdir=tmp_path)
    assert spec.name == "ft-hallu-tiny-test"
    assert spec.output_dir == str(tmp_path / "cfg" / "adapter")
    assert spec.argv[-3:] == ("finetune", "--config", str(config))
    assert spec.finetune_config["finetune"]["base_model"] == "tiny"
    bad = tmp_path / "bad.toml"
    bad.write_text('[finetune]\nbase_model = "tiny"\nepochs = "many"\n')
    with pytest.raises(UserError, match="bad.toml"):
        L.build_spec(bad)


def test_job_environment_drops_secrets_but_keeps_listed_ones():
    base = {
        "PATH": "/usr/bin",
        "OPENAI_API_KEY": FAKE_KEY,
        "MY_SECRET": "x",
        "GITHUB_TOKEN": "t",
        "DB_PASSWORD": "p",
        "HF_TOKEN": "hf",
        "FT_HALLU_HOME": "/data",
    }
    env = L.job_environment(base, keep=("HF_TOKEN",))
    assert env == {"PATH": "/usr/bin", "HF_TOKEN": "hf", "FT_HALLU_HOME": "/data"}


# ------------------------------------------------------------------ rendering


def test_sbatch_script_has_every_setting_in_order(tmp_path):
    config = write_finetune_config(tmp_path / "cfg")
    cluster = L.ClusterSettings(
        partition="gpu",
        account="proj-1",
        qos="normal",
        gpus=2,
        gpu_type="a100",
        time="1-02:00:00",
        mem="64G",
        cpus=8,
        extra_sbatch=("--constraint=a100", "--mail-type=END"),
        setup=("module load cuda/12.4", "source /opt/venv/bin/activate"),
        command=("ft-hallu",),
    )
    spec = L.build_spec(config, cluster, name="my job", log_dir=tmp_path / "logs", workdir=tmp_path)
    script = L.render_sbatch_script(spec, str(tmp_path / "logs" / "j-%j.out"))
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line for line in lines if line.startswith("#SBATCH ")]
    assert directives == [
        '#SBATCH --job-name="my job"',
        f'#SBATCH --output="{tmp_path}/logs/j-%j.out"',
        f'#SBATCH --chdir="{tmp_path}"',
        '#SBATCH --partition="gpu"',
        '#SBATCH --account="proj-1"',
        '#SBATCH --qos="normal"',
        '#SBATCH --gres="gpu:a100:2"',
        '#SBATCH --time="1-02:00:00"',
        '#SBATCH --mem="64G"',
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --constraint=a100",
        "#SBATCH --mail-type=END",
    ]
    # sbatch stops reading directives at the first command, so they must all come first.
    assert lines[1 : 1 + len(directives)] == directives
    body = lines[1 + len(directives) :]
    assert body.index("module load cuda/12.4") < body.index("source /opt/venv/bin/activate")
    assert body[-1] == f"exec ft-hallu finetune --config {shlex.quote(str(config))}"
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_default_command_runs_this_checkout():
    argv = L.default_command()
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    assert "ft-hallu" in result.stdout


def hostile_setup(tmp_path: Path) -> tuple[Path, Path, str]:
    """A config file in a folder whose name tries three injections; returns (config, marker dir, name)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    folder = tmp_path / f"a;touch {markers}/semi;b $(touch {markers}/subst) `touch {markers}/tick` 'q\" d"
    config = write_finetune_config(folder)
    name = f'x"; touch {markers}/name; echo "$(touch {markers}/name2)\'`touch {markers}/name3`'
    return config, markers, name


def test_hostile_values_stay_data_when_the_scripts_run(tmp_path):
    config, markers, name = hostile_setup(tmp_path)
    record = tmp_path / "argv.txt"
    # The "fine-tune" records the arguments it received, one per line.
    command = shell_command(f'printf "%s\\n" "$@" > {shlex.quote(str(record))}')
    spec = L.build_spec(
        config,
        L.ClusterSettings(command=command),
        name=name,
        log_dir=tmp_path / "logs",
        workdir=config.parent,
    )
    sbatch_script = tmp_path / "job.sbatch"
    sbatch_script.write_text(L.render_sbatch_script(spec, str(tmp_path / "out-%j.log")))
    local_script = tmp_path / "job.sh"
    local_script.write_text(L.render_local_script(spec, tmp_path / "job.exit"))
    for script in (sbatch_script, local_script):
        record.unlink(missing_ok=True)
        # The sbatch script is a bash script too (#SBATCH lines are comments): run both for real.
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert record.read_text().splitlines() == ["finetune", "--config", str(config)]
    assert list(markers.iterdir()) == []
    assert (tmp_path / "job.exit").read_text().strip() == "0"


@pytest.mark.parametrize("bad_name", ["ok\ntouch /tmp/fth-pwned", "tab\there", "cr\rhere", ""])
def test_job_names_with_control_characters_are_rejected(tmp_path, bad_name):
    config = write_finetune_config(tmp_path / "cfg")
    with pytest.raises(UserError, match="job name"):
        L.build_spec(config, name=bad_name, log_dir=tmp_path / "logs")


def test_config_path_with_newline_is_rejected(tmp_path):
    config = write_finetune_config(tmp_path / "a\nb")
    with pytest.raises(UserError, match="newlines"):
        L.build_spec(config, log_dir=tmp_path / "logs")


# ------------------------------------------------------------------ local launcher


@pytest.fixture
def store(tmp_path):
    handle = open_db(tmp_path / "ft-hallu.db")
    yield handle
    handle.close()


def local_spec(tmp_path: Path, script: str, name: str = "local-test") -> L.LaunchSpec:
    config = write_finetune_config(tmp_path / "cfg")
    return L.build_spec(
        config,
        L.ClusterSettings(command=shell_command(script)),
        name=name,
        log_dir=tmp_path / "logs",
        workdir=tmp_path,
    )


def test_local_job_completes_and_is_stored(tmp_path, store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("FTH_VISIBLE", "yes")
    # The job dumps its whole environment: even then the key must not reach the log.
    spec = local_spec(tmp_path, 'echo "training $3"; env; echo done')
    job = L.launch(store, spec, L.LocalLauncher())
    assert job.launcher == "local" and job.state == "RUNNING" and job.job_id.isdigit()
    job = L.wait(store, job, timeout=20, poll_seconds=0.05)
    assert (job.state, job.exit_code) == ("COMPLETED", 0)
    assert job.finished_at and job.started_at
    log = Path(job.log_path).read_text()
    assert f"training {spec.config_path}" in log and "FTH_VISIBLE=yes" in log and "done" in log
    assert FAKE_KEY not in log
    assert FAKE_KEY not in Path(job.script_path).read_text()
    stored = job_store.get_job(store, job.id)
    assert stored["state"] == "COMPLETED" and FAKE_KEY not in str(stored)
    assert stored["config"]["cluster"]["command"][0] == "/bin/sh"
    assert L.tail(job, 1) == "done"


def test_local_job_failure_reports_exit_code_and_tail(tmp_path, store):
    spec = local_spec(tmp_path, "echo line-1; echo 'bad things happened' >&2; exit 3")
    job = L.wait(store, L.launch(store, spec, L.LocalLauncher()), timeout=20, poll_seconds=0.05)
    assert (job.state, job.exit_code) == ("FAILED", 3)
    assert L.tail(job, 2).splitlines()[-1] == "bad things happened"


def test_local_job_cancel_kills_the_process_group(tmp_path, store):
    pid_file = tmp_path / "child.pid"
    spec = local_spec(tmp_path, f"sleep 300 & echo $! > {shlex.quote(str(pid_file))}; wait")
    job = L.launch(store, spec, L.LocalLauncher())
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip())
    child = int(pid_file.read_text())
    job = L.cancel(store, job)
    assert job.state == "CANCELLED" and job.finished_at
    wait_until(lambda: not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text())
    # A later refresh keeps CANCELLED, and cancelling twice is a clear error.
    assert L.refresh(store, job).state == "CANCELLED"
    with pytest.raises(UserError, match="already finished"):
        L.cancel(store, job)


def test_cli_launch_jobs_logs_cancel_and_reattach(tmp_path, capsys):
    """The CLI runs in a separate process (as after an SSH drop); this process reattaches via the store."""
    db = tmp_path / "ft-hallu.db"
    config = write_finetune_config(tmp_path / "cfg")
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(
        f"command = {list(shell_command('echo job-output-begins; sleep 300'))!r}\n".replace("'", '"')
    )
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY}
    argv = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]
    launched = subprocess.run(
        [*argv, "--db", str(db), "launch", "--config", str(config), "--cluster", str(cluster), "--local",
         "--name", "cli job", "--log-dir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.startswith("job 1: local:")
    assert FAKE_KEY not in launched.stdout + launched.stderr

    store = open_db(db)
    job = L.get_job(store, 1)
    wait_until(lambda: "job-output-begins" in Path(job.log_path).read_text())
    store.close()

    assert cli_main(["--db", str(db), "jobs"]) == 0
    listing = capsys.readouterr().out
    assert "local:" in listing and "RUNNING" in listing and "cli job" in listing
    assert cli_main(["--db", str(db), "logs", "1", "-n", "5"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "job-output-begins"
    assert cli_main(["--db", str(db), "cancel", f"local:{job.job_id}"]) == 0
    assert "CANCELLED" in capsys.readouterr().out
    assert cli_main(["--db", str(db), "logs", "1", "--follow"]) == 0
    assert "[job 1 local:" in capsys.readouterr().out
    assert cli_main(["--db", str(db), "logs", "7"]) == 2
    assert "job 7: no such job" in capsys.readouterr().err
    assert cli_main(["--db", str(db), "cancel", "1"]) == 2
    assert "already finished" in capsys.readouterr().err


def test_cli_rejects_bad_cluster_file_before_submitting(tmp_path, capsys):
    db = tmp_path / "ft-hallu.db"
    config = write_finetune_config(tmp_path / "cfg")
    cluster = tmp_path / "cluster.toml"
    cluster.write_text('partition = "gpu$(reboot)"\n')
    code = cli_main(["--db", str(db), "launch", "--config", str(config), "--cluster", str(cluster)])
    assert code == 2
    assert f"{cluster}: partition" in capsys.readouterr().err
    store = open_db(db)
    assert job_store.list_jobs(store) == []
    store.close()


def test_slurm_commands_missing_is_a_clear_error(tmp_path, store, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    spec = local_spec(tmp_path, "true")
    with pytest.raises(
        UserError, match="sbatch: not found; run this on a Slurm login node, or launch with --local"
    ):
        L.launch(store, spec, L.SlurmLauncher())
    assert job_store.list_jobs(store) == []
    # A stored Slurm job still lists (with the reason) on a machine without Slurm.
    row = job_store.add_job(
        store, launcher="slurm", job_id="42", name="n", config_path="c", config={}, state="RUNNING",
        output_dir="o", log_path=str(tmp_path / "none.out"), script_path="s",
    )  # fmt: skip
    [job] = L.list_jobs(store)
    assert job.id == row and job.state == "RUNNING" and "squeue: not found" in job.detail
    assert L.tail(job) == ""


def test_slurm_helper_says_why_it_cannot_start(monkeypatch, tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    import slurm_cluster

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert slurm_cluster.unavailable_reason() == "real-Slurm tests need root (slurmd must run as root)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(slurm_cluster, "_which", lambda name: None if name == "slurmd" else "/bin/true")
    reason = slurm_cluster.unavailable_reason()
    assert reason.startswith("Slurm packages missing (slurmd)") and "apt-get install" in reason
