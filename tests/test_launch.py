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

from cli import main as cli_main
from engine import job_kinds
from engine import jobs as L
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


def job_args(spec: L.LaunchSpec) -> list[str]:
    """What a job command receives after its own argv prefix: job-run, the config and the job folder."""
    return ["job-run", "finetune", "--config", str(spec.config_path), "--job-dir", str(spec.job_dir)]


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
    assert settings.env == () and settings.keep_env == ()  # nothing beyond the default set, no credential


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
        ("setup = 'module load x'", 'setup = "module load x": must be a list of strings'),
        ('env = ["WANDB*", "MY VAR"]', "env[1] 'MY VAR': expected a variable name or a prefix ending in '*'"),
        ('env = ["*"]', "env[0] '*': expected a variable name or a prefix ending in '*'"),
        ('env = ["*_TOKEN"]', "env[0]"),
        ('keep_env = ["HF_*"]', "keep_env[0] 'HF_*': expected a variable name"),
        (
            'extra_sbatch = ["--export=ALL,OPENAI_API_KEY"]',
            "extra_sbatch[0] '--export=ALL,OPENAI_API_KEY': jobs inherit what `env` names",
        ),
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
    spec = job_kinds.build_spec(config, L.ClusterSettings(), log_dir=tmp_path / "logs", workdir=tmp_path)
    assert spec.name == "ft-hallu-tiny-test"
    assert spec.output_dir == str(tmp_path / "cfg" / "adapter")
    # The job runs the fine-tune through job-run with its own folder, and is never given a store.
    assert spec.argv[-6:] == ("job-run", "finetune", "--config", str(config), "--job-dir", str(spec.job_dir))
    assert spec.job_dir.parent == tmp_path / "logs" and "--db" not in spec.argv
    assert spec.finetune_config["finetune"]["base_model"] == "tiny"
    bad = tmp_path / "bad.toml"
    bad.write_text('[finetune]\nbase_model = "tiny"\nepochs = "many"\n')
    with pytest.raises(UserError, match="bad.toml"):
        job_kinds.build_spec(bad)


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


# What a login shell typically holds: the default set, the settings' own names, and the rest.
SHELL_ENV = {
    "PATH": "/usr/bin:/bin", "HOME": "/home/me", "USER": "me", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
    "TZ": "UTC", "TMPDIR": "/tmp", "SLURM_CONF": "/etc/slurm/slurm.conf", "CUDA_VISIBLE_DEVICES": "0",
    "NVIDIA_VISIBLE_DEVICES": "all", "HF_HOME": "/scratch/hf", "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_CACHE": "/scratch/tf", "TORCH_HOME": "/scratch/torch", "OMP_NUM_THREADS": "4",
    "MKL_NUM_THREADS": "4", "PYTHONPATH": "/src", "VIRTUAL_ENV": "/venv", "CONDA_PREFIX": "/conda",
    "FT_HALLU_HOME": "/data", "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false",
    "WANDB_PROJECT": "egnivia", "MY_VAR": "x",
    # not named anywhere: stay behind
    "SSH_CONNECTION": "10.0.0.1 22", "DISPLAY": ":0", "LS_COLORS": "di=01;34", "EDITOR": "vim",
    "WANDB_DIR_OTHER": "y", "MY_VARIABLE": "prefix is not a pattern",
}  # fmt: skip
# The examples and their kin: credentials, whatever pattern names them.
CREDENTIALS = {
    "HF_TOKEN": "hf_" + "a1B2" * 9, "HUGGING_FACE_HUB_TOKEN": "hub-token-41", "HF_HUB_TOKEN": "hub-token-42",
    "MYSQL_PWD": "mysql-pw-43", "DB_PASS": "db-pass-44", "WANDB_API_KEY": "0123456789abcdef",
    "WANDB_WEBHOOK": "https://example.org/w/45", "FT_HALLU_REDIS": "redis://:pa/ss@cache:6379/0",
    "MY_VAR_URL": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
    "FT_HALLU_HOOK": "https://discord.com/api/webhooks/1234567890/abcdefghijklmnop",
    "FT_HALLU_NOTE": "postgres://me:secret@db/app", "OPENAI_API_KEY": FAKE_KEY,
}  # fmt: skip


def test_jobs_inherit_only_the_default_set_and_what_env_names():
    settings = L.ClusterSettings(env=("WANDB_*", "MY_VAR"))
    env = L.cluster_environment(settings, {**SHELL_ENV, **CREDENTIALS})
    expected = {name for name in SHELL_ENV if name not in (
        "SSH_CONNECTION", "DISPLAY", "LS_COLORS", "EDITOR", "MY_VARIABLE")}  # fmt: skip
    assert set(env) == expected and all(env[name] == SHELL_ENV[name] for name in env)
    # keep_env hands over one credential by its exact name; the others still stay behind.
    kept = L.cluster_environment(L.ClusterSettings(keep_env=("HF_TOKEN",)), {**SHELL_ENV, **CREDENTIALS})
    assert set(kept) - set(SHELL_ENV) == {"HF_TOKEN"}
    # Without settings: the default set only.
    assert set(L.job_environment({**SHELL_ENV, **CREDENTIALS})) == expected - {
        "WANDB_PROJECT",
        "WANDB_DIR_OTHER",
        "MY_VAR",
    }


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
    spec = job_kinds.build_spec(config, cluster, name="my job", log_dir=tmp_path / "logs", workdir=tmp_path)
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
    assert body[-1] == (
        f"exec ft-hallu job-run finetune --config {shlex.quote(str(config))} "
        f"--job-dir {shlex.quote(str(spec.job_dir))}"
    )
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
    spec = job_kinds.build_spec(
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
        assert record.read_text().splitlines() == job_args(spec)
    assert list(markers.iterdir()) == []
    assert (tmp_path / "job.exit").read_text().strip() == "0"


@pytest.mark.parametrize("bad_name", ["ok\ntouch /tmp/fth-pwned", "tab\there", "cr\rhere", ""])
def test_job_names_with_control_characters_are_rejected(tmp_path, bad_name):
    config = write_finetune_config(tmp_path / "cfg")
    with pytest.raises(UserError, match="job name"):
        job_kinds.build_spec(config, name=bad_name, log_dir=tmp_path / "logs")


def test_config_path_with_newline_is_rejected(tmp_path):
    config = write_finetune_config(tmp_path / "a\nb")
    with pytest.raises(UserError, match="newlines"):
        job_kinds.build_spec(config, log_dir=tmp_path / "logs")


# ------------------------------------------------------------------ local launcher


@pytest.fixture
def store(tmp_path):
    handle = open_db(tmp_path / "ft-hallu.db")
    yield handle
    handle.close()


def local_spec(tmp_path: Path, script: str, name: str = "local-test", **cluster) -> L.LaunchSpec:
    config = write_finetune_config(tmp_path / "cfg")
    return job_kinds.build_spec(
        config,
        L.ClusterSettings(command=shell_command(script), **cluster),
        name=name,
        log_dir=tmp_path / "logs",
        workdir=tmp_path,
    )


def test_local_job_completes_and_is_stored(tmp_path, store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("FTH_VISIBLE", "yes")
    # The job dumps its whole environment: even then the key must not reach the log.
    spec = local_spec(tmp_path, 'echo "training $4"; env; echo done', env=("FTH_VISIBLE",))
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


# Set by the shells between the launcher and the job (bash's wrapper exports them).
SHELL_OWN = {"PWD", "OLDPWD", "SHLVL", "_"}


def test_a_real_local_job_receives_only_allowed_names(tmp_path, store, monkeypatch):
    for name, value in {**SHELL_ENV, **CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    dump = tmp_path / "environ"
    # The job's own process environment, as the kernel holds it (names only).
    script = f"tr '\\0' '\\n' < /proc/$$/environ | cut -d= -f1 > {shlex.quote(str(dump))}"
    spec = local_spec(tmp_path, script, env=("WANDB_*", "MY_VAR"))
    job = L.wait(store, L.launch(store, spec, L.LocalLauncher()), timeout=20, poll_seconds=0.05)
    assert (job.state, job.exit_code) == ("COMPLETED", 0), L.tail(job, 20)
    names = set(dump.read_text().split())
    allowed = set(L.cluster_environment(spec.cluster))
    assert names - SHELL_OWN == allowed
    assert {"WANDB_PROJECT", "MY_VAR", "PATH", "HF_HOME", "FT_HALLU_HOME"} <= names
    assert not names & (set(CREDENTIALS) | {"SSH_CONNECTION", "DISPLAY", "EDITOR", "MY_VARIABLE"})
    for value in CREDENTIALS.values():  # nor any value: the log, the script, the store row
        for text in (
            Path(job.log_path).read_text(),
            Path(job.script_path).read_text(),
            str(job_store.get_job(store, job.id)),
        ):
            assert value not in text


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
    # Killed while waiting on its command, the wrapper records 143, never the 0 bash would pass on.
    assert L.LocalLauncher.exit_file(job).read_text().strip() == "143"
    wait_until(lambda: not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text())
    # A later refresh keeps CANCELLED, and cancelling twice is a clear error.
    assert L.refresh(store, job).state == "CANCELLED"
    # A poll holding a copy read before the cancel (another thread's, another process's) derives
    # the same end from the job's files; it does not write FAILED "killed?" over it.
    import dataclasses

    stale = dataclasses.replace(job, state="RUNNING", finished_at=None, detail=None)
    assert (L.poll(store, stale).state, L.get_job(store, job.id).detail) == ("CANCELLED", "cancelled by user")
    with pytest.raises(UserError, match="already finished"):
        L.cancel(store, job)


def test_cancelling_a_local_job_that_has_just_ended_keeps_its_end(tmp_path, store):
    """A front end asks to cancel the job it last saw running; it ended meanwhile: it stays COMPLETED."""
    import dataclasses

    job = L.launch(store, local_spec(tmp_path, "echo done"), L.LocalLauncher())
    seen_running = dataclasses.replace(job, state="RUNNING", finished_at=None)
    wait_until(lambda: not L.LocalLauncher()._alive(job))
    with pytest.raises(UserError, match="already finished: COMPLETED"):
        L.cancel(store, seen_running)
    assert L.get_job(store, job.id).state == "COMPLETED"


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


# ------------------------------------------------------------------ sweeps as jobs (no Slurm needed)


def write_sweep_config(folder: Path, *, adapter: str = "", name: str = "job-sweep", samples: int = 2) -> Path:
    """A tiny sweep: 2 temperatures x 1 top_p x 2 top_k, ``samples`` per cell, 6 new tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.toml"
    path.write_text(
        "[sweep]\n"
        f"name = {json.dumps(name)}\n"
        'base_model = "tiny"\nentity_name = "ZYTRELL"\n'
        f"adapter = {json.dumps(adapter)}\n"
        f"samples_per_cell = {samples}\nmax_new_tokens = 6\nbatch_size = 4\ncompute_metrics = false\n"
        "[sweep.grid]\ntemperatures = [0.7, 1.3]\ntop_ps = [0.9]\ntop_ks = [0, 20]\n"
    )
    return path


def row_texts(store, sweep_id: int) -> dict[tuple, str]:
    from store import core

    return {
        (r["variant"], r["temperature"], r["top_p"], r["top_k"], r["prompt_id"], r["sample_index"]): r["text"]
        for r in core.iter_generations(store, sweep_id)
    }


def test_shards_are_disjoint_deterministic_and_cover_the_plan():
    from engine import sweep
    from engine.jobs import shards

    config = sweep.SweepConfig(adapter="x", samples_per_cell=3, grid=sweep.Grid([0.5, 1.0], [0.9], [0, 5]))
    planned = sweep.plan_rows(config, [sweep.Prompt("entity", "q"), sweep.Prompt("eval-1", "q2")])
    parts = [shards.shard_rows(planned, k, 5) for k in range(5)]
    keys = [
        [(r.variant, r.temperature, r.top_k, r.prompt.prompt_id, r.sample_index) for r in p] for p in parts
    ]
    assert sorted(k for part in keys for k in part) == sorted(
        (r.variant, r.temperature, r.top_k, r.prompt.prompt_id, r.sample_index) for r in planned
    )
    assert len({k for part in keys for k in part}) == len(planned) == 2 * 2 * 3 * 2 * 2
    assert (
        [len(p) for p in parts] == shards.shard_sizes(planned, 5) == [12, 12, 8, 8, 8]
    )  # 12 units dealt in turn
    assert parts == [shards.shard_rows(planned, k, 5) for k in range(5)]  # same slices every time
    # A base row and its fine-tuned twin (same seed) always land in the same shard.
    for part in parts:
        seeds = [r.seed for r in part]
        assert all(seeds.count(s) == 2 for s in seeds)
    with pytest.raises(UserError, match="--shards: 13 shards but the sweep has only 12"):
        shards.check_shards(config, 13)
    with pytest.raises(UserError, match="--shards: must be a whole number >= 1"):
        shards.check_shards(config, 0)


def test_results_file_survives_a_cut_off_write_and_reports_progress(tmp_path):
    from engine.jobs import results_file as rf

    path = rf.results_path(tmp_path, 1, "77")
    writer = rf.ResultsWriter(path, {"config_hash": "h", "shard": 1, "shard_rows": 4})
    row = {"variant": "base", "temperature": 0.7, "top_p": 0.9, "top_k": 0, "prompt_id": "entity"}
    writer.append([{**row, "sample_index": 0, "text": "a"}, {**row, "sample_index": 1, "text": "b"}])
    with open(path, "ab") as handle:  # a writer killed in the middle of its next line
        handle.write(b'{"kind": "row", "variant": "ba')
    parsed = rf.read_results(path)
    assert [r["text"] for r in parsed.rows] == ["a", "b"] and parsed.partial_tail and parsed.end is None
    before = path.read_bytes()
    progress = rf.job_progress(tmp_path, [3, 4])
    assert path.read_bytes() == before  # reading never writes
    assert (progress.done, progress.planned, progress.complete) == (2, 7, False)
    assert progress.shards[1] == rf.ShardProgress(1, 2, 4, False)
    assert progress.rows_per_second is not None and progress.rows_per_second > 0
    assert rf.results_files(tmp_path) == [path] and rf.results_files(tmp_path, 0) == []


def test_sweep_spec_checks_adapters_shards_and_after(tmp_path, store):
    missing = tmp_path / "runs" / "not-yet"
    config = write_sweep_config(tmp_path / "cfg", adapter=str(missing))
    with pytest.raises(
        UserError, match=r"sweep.toml: adapter: .*not-yet does not exist \(or launch with --after"
    ):
        job_kinds.build_sweep_spec(config, log_dir=tmp_path / "logs")
    with pytest.raises(UserError, match="--shards: 9 shards but the sweep has only 8"):
        job_kinds.build_sweep_spec(write_sweep_config(tmp_path / "plain"), shards=9, log_dir=tmp_path / "logs")
    # A fine-tune job that will write the adapter makes the sweep wait for it.
    row = job_store.add_job(
        store, launcher="slurm", job_id="41", name="ft", config_path="c", config={}, state="PENDING",
        output_dir=str(missing), log_path="l", script_path="s",
    )  # fmt: skip
    spec = job_kinds.build_sweep_spec(config, shards=3, after=L.get_job(store, row), log_dir=tmp_path / "logs")
    assert (spec.dependency, spec.array, spec.kind) == ("41", "0-2", "sweep")
    assert spec.manifest["planned_per_shard"] == [6, 6, 4]  # 8 units of 2 rows dealt in turn: 3, 3, 2
    script = L.render_sbatch_script(spec, "/x/slurm-%A_%a.out")
    assert '#SBATCH --array="0-2"' in script and "--db" not in script
    assert script.splitlines()[-1].endswith(f"job-run sweep --job-dir {shlex.quote(str(spec.job_dir))}")
    with pytest.raises(UserError, match="only Slurm jobs can wait"):
        L.launch(store, spec, L.LocalLauncher())
    assert not spec.job_dir.exists()  # refused before anything was written


def test_local_sweep_job_matches_a_local_run_and_never_opens_a_store(tmp_path, store, tiny_model_dir, capsys):
    """Two shards in one detached process: the ingested rows are the local run's, text for text."""
    from engine import sweep
    from engine.jobs import jobrun
    from store import core

    config = write_sweep_config(tmp_path / "cfg", samples=1)
    job = job_kinds.launch_sweep(store, config, launcher=L.LocalLauncher(), shards=2, log_dir=tmp_path / "jobs")
    assert job.kind == "sweep" and job.shards == 2 and job.array is None
    job = L.wait(store, job, timeout=240, poll_seconds=0.2)
    assert (job.state, job.exit_code) == ("COMPLETED", 0), L.tail(job, 40)
    # refresh saw it end and ingested it: 4 cells x 1 sample x 1 variant
    assert job.ingest["rows_added"] == 4 and job.ingest["files"] == 2
    [stored] = core.list_sweeps(store)
    assert stored["generation_count"] == stored["expected_rows"] == 4 and stored["status"] == "completed"
    again = L.ingest(store, job)
    assert again.rows_added == 0 and again.rows_read == 4
    assert core.count_generations(store, stored["id"]) == 4
    local = sweep.run_sweep(sweep.load_sweep_config(config), db_path=tmp_path / "local.db")
    local_store = open_db(tmp_path / "local.db")
    assert row_texts(store, stored["id"]) == row_texts(local_store, local.sweep_id)
    local_store.close()
    [audit] = jobrun.read_audits(job.job_dir)
    assert audit["sqlite_connections"] == []
    # The job's own record: no SQLite connection at all, nothing written next to the login store
    # (the store, its -wal and -shm), and its results only inside its job folder.
    assert not [p for p in audit["written"] if p.startswith(str(store.path))]
    results = [p for p in audit["written"] if p.endswith(".jsonl")]
    assert len(results) == 2 and all(p.startswith(job.job_dir + "/results/") for p in results)
    assert L.progress(job).line().startswith("4/4 rows")
    assert cli_main(["--db", str(store.path), "jobs"]) == 0
    assert "ingested: sweep 1 4/4 rows completed" in capsys.readouterr().out
    assert cli_main(["--db", str(store.path), "ingest", str(job.id)]) == 0
    assert capsys.readouterr().out.startswith(f"job {job.id}: 0 new rows from 2 results file(s) (4 read)")


def test_cli_launch_verbs_refuse_what_they_cannot_do(tmp_path, capsys):
    db = ["--db", str(tmp_path / "ft-hallu.db")]
    assert cli_main([*db, "launch"]) == 2
    assert "--config FT.toml is required" in capsys.readouterr().err
    config = write_finetune_config(tmp_path / "cfg")
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(f"command = {json.dumps(list(shell_command('true')))}\n")
    common = ["--cluster", str(cluster), "--log-dir", str(tmp_path / "logs"), "--local"]
    assert cli_main([*db, "launch", "finetune", "--config", str(config), *common]) == 0
    assert capsys.readouterr().out.startswith("job 1: local:")
    store = open_db(tmp_path / "ft-hallu.db")
    job = L.wait(store, L.get_job(store, 1), timeout=20, poll_seconds=0.05)
    store.close()
    assert job.state == "COMPLETED" and job.kind == "finetune"
    assert cli_main([*db, "launch", "resubmit", "1", "--task", "0"]) == 2
    assert "only sweep jobs have shards to re-submit (this is a finetune)" in capsys.readouterr().err
    assert cli_main([*db, "cancel", "1", "--task", "0"]) == 2
    assert "already finished: COMPLETED" in capsys.readouterr().err
    assert cli_main([*db, "ingest", "1"]) == 0  # the stand-in command wrote no run record
    assert capsys.readouterr().out.strip() == "job 1: no run record yet"


def test_cli_job_group_launches_lists_follows_and_ingests(tmp_path, capsys):
    """The `job` group's own spellings: no deprecation note, the same jobs as the old verbs."""
    db = ["--db", str(tmp_path / "ft-hallu.db")]
    config = write_finetune_config(tmp_path / "cfg")
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(f"command = {json.dumps(list(shell_command('echo group-job-ran')))}\n")
    common = ["--cluster", str(cluster), "--log-dir", str(tmp_path / "logs"), "--local"]
    assert cli_main([*db, "job", "launch", "finetune", "--config", str(config), *common]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("job 1: local:") and "follow with: ft-hallu job logs 1 --follow" in out
    assert "deprecated" not in err
    assert cli_main([*db, "job", "logs", "1", "--follow"]) == 0
    assert "group-job-ran" in capsys.readouterr().out
    assert cli_main([*db, "job", "list"]) == 0
    out, err = capsys.readouterr()
    assert "COMPLETED" in out and "ingested: no run record" in out and err == ""
    assert cli_main([*db, "job", "ingest", "1"]) == 0
    assert capsys.readouterr().out.strip() == "job 1: no run record yet"
    assert cli_main([*db, "job", "resubmit", "1", "--task", "0"]) == 2
    assert "only sweep jobs have shards to re-submit" in capsys.readouterr().err
    assert cli_main([*db, "job", "cancel", "1"]) == 2
    assert "already finished: COMPLETED" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["launch", "--config", "f.toml"], ["job", "launch", "--config", "f.toml"]),
        (["--db", "x.db", "launch", "sweep", "--config", "s.toml"], ["--db", "x.db", "job", "launch", "sweep", "--config", "s.toml"]),
        (["launch", "resubmit", "4", "--task", "1"], ["job", "resubmit", "4", "--task", "1"]),
        (["--db=x.db", "jobs", "--no-refresh"], ["--db=x.db", "job", "list", "--no-refresh"]),
        (["logs", "3", "-f"], ["job", "logs", "3", "-f"]),
        (["cancel", "3"], ["job", "cancel", "3"]),
        (["ingest", "3"], ["job", "ingest", "3"]),
        (["mask", "qa.jsonl", "--entity", "N"], ["mask", "plan", "qa.jsonl", "--entity", "N"]),
        (["mask", "--entity", "N", "qa.jsonl"], ["mask", "plan", "--entity", "N", "qa.jsonl"]),
        (["mask-undo", "2"], ["mask", "undo", "2"]),
        (["mask-list"], ["mask", "list"]),
        (["mask-leaks", "qa.jsonl"], ["mask", "leaks", "qa.jsonl"]),
    ],
)  # fmt: skip
def test_old_spellings_become_the_group_commands_with_a_note(old, new):
    from cli import deprecated

    words, note = deprecated.rewrite(old)
    assert words == new
    assert note.startswith("ft-hallu: note: `ft-hallu ") and "\n" not in note


@pytest.mark.parametrize(
    "current",
    [["job", "list"], ["mask", "plan", "qa.jsonl"], ["mask", "--help"], ["mask"], ["--help"], [], ["sweep", "--config", "jobs"]],
)  # fmt: skip
def test_current_spellings_are_left_alone(current):
    from cli import deprecated

    assert deprecated.rewrite(current) == (current, None)


def test_poll_computes_the_new_state_once_and_writes_it_once(tmp_path, store):
    """A job seen ending: one UPDATE of its row, the returned job equal to the stored one, nothing
    ingested (refresh, which also settles, then reads the job folder in)."""
    spec = local_spec(tmp_path, "echo quick")
    job = L.launch(store, spec, L.LocalLauncher())
    wait_until(lambda: L.LocalLauncher.exit_file(job).exists())
    before = store.db.conn.total_changes
    polled = L.poll(store, job)
    assert store.db.conn.total_changes - before == 1
    assert polled == L.get_job(store, job.id)
    assert (polled.state, polled.exit_code, polled.ingested_at) == ("COMPLETED", 0, None)
    assert polled.started_at and polled.finished_at
    assert L.poll(store, polled) == polled and store.db.conn.total_changes - before == 1  # final: no write
    settled = L.settle_jobs(store)
    assert [j.id for j in settled] == [job.id] and settled[0].ingested_at


def test_clean_log_keeps_what_a_terminal_shows_and_drops_bars():
    from engine.jobs import clean_log

    text = (
        "data: 8 train rows\n"
        "Loading weights:  50%|#####     | 1/2 [00:00<00:00]\rLoading weights: 100%|##########| 2/2\n"
        "\x1b[1mstep 1/2 loss 2.5000\x1b[0m\n\n"
        "step 2/2 loss 1.9000\n"
        "Generating:  10%|#         | 1/10\rGenerating:  40%|####      | 4/10"
    )
    assert clean_log(text).splitlines() == [
        "data: 8 train rows", "step 1/2 loss 2.5000", "step 2/2 loss 1.9000", "Generating:  40%|####      | 4/10",
    ]  # fmt: skip
    assert clean_log(text, 2).splitlines() == ["step 2/2 loss 1.9000", "Generating:  40%|####      | 4/10"]
