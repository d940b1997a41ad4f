"""Fine-tunes over several processes (issue 28): the settings and their checks, the torchrun and
srun commands as rendered and as bash runs them, FSDP's arguments as transformers and accelerate
take them, a failing rank named in the job's detail line, and a real 2-process DDP fine-tune of the
tiny model on CPU (gloo) through torchrun that trains on the same batches as one process and
leaves one adapter a sweep uses. The same run under Slurm (one node and two) is in test_slurm.py.

FSDP and DeepSpeed cannot run here: accelerate 1.16 enables FSDP only for GPU processes (on CPU it
would quietly run DDP, so the engine refuses it), and DeepSpeed is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main as cli_main
from engine import job_kinds, parallel
from engine import jobs as L
from engine.configfile import to_toml
from engine.errors import UserError
from engine.finetune import FinetuneConfig, load_config, run_finetune
from engine.jobs import jobrun
from engine.jobs.torchrun import RANK_WRAPPER, WRAPPER_NAME, torchrun_literal
from store import core
from store import jobs as job_store
from store.db import open_db

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_launch import SAMPLE, shell_command, wait_until  # noqa: E402
from test_launch import job_args as launch_args  # noqa: E402

TORCHRUN = (sys.executable, "-m", "torch.distributed.run")


def ddp_config(folder: Path, *, per_device: int = 4, extra: str = "", name: str = "ddp-tiny") -> Path:
    """A 2-step tiny LoRA fine-tune; distributed settings come from ``extra`` or the command line."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ft.toml"
    path.write_text(
        "[finetune]\n"
        f"name = {json.dumps(name)}\n"
        'base_model = "tiny"\n'
        f"dataset = {json.dumps(str(SAMPLE))}\n"
        f"output_dir = {json.dumps(str(folder / 'adapter'))}\n"
        "max_steps = 2\n"
        f"per_device_batch_size = {per_device}\n"
        "gradient_accumulation_steps = 1\n"
        "gradient_checkpointing = false\n"
        "logging_steps = 1\n" + extra
    )
    return path


# ------------------------------------------------------------------ settings


def test_settings_come_from_toml_and_the_command_line_and_write_back(tmp_path):
    path = ddp_config(
        tmp_path,
        extra='distributed = "fsdp"\nprocesses_per_node = 4\nnodes = 2\nfsdp_sharding = "shard_grad_op"\n'
        'fsdp_layer_classes = ["LlamaDecoderLayer"]\ncpu_offload = true\n',
    )
    config = load_config(path)
    assert (config.distributed, config.processes_per_node, config.nodes) == ("fsdp", 4, 2)
    assert (config.fsdp_sharding, config.fsdp_layer_classes, config.cpu_offload) == (
        "shard_grad_op", ["LlamaDecoderLayer"], True,
    )  # fmt: skip
    # The one TOML writer (forms launch through it) writes them so the loader reads the same config.
    again = tmp_path / "again.toml"
    again.write_text(to_toml("finetune", config))
    assert load_config(again) == config
    # Command-line overrides win, and are checked with the option's name.
    assert load_config(path, {"distributed": "ddp", "cpu_offload": False}).distributed == "ddp"
    with pytest.raises(UserError, match=r'command line: --nodes = 0: must be >= 1'):
        load_config(path, {"nodes": 0})
    # Defaults: one process, nothing sharded.
    plain = load_config(ddp_config(tmp_path / "plain"))
    assert (plain.distributed, plain.processes_per_node, plain.nodes, plain.zero_stage) == ("none", 0, 1, 3)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed here")
def test_deepspeed_without_the_package_is_one_line_and_nothing_is_launched(tmp_path, capsys):
    config = ddp_config(tmp_path / "cfg")
    db = tmp_path / "ft-hallu.db"
    code = cli_main(["--db", str(db), "job", "launch", "--config", str(config), "--local",
                     "--distributed", "deepspeed", "--log-dir", str(tmp_path / "jobs")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err == (
        f'ft-hallu: error: {config}: distributed = "deepspeed" needs the deepspeed package, which is not installed '
        '(pip install deepspeed where the job runs), or use distributed = "fsdp"'
    )
    assert not (tmp_path / "jobs").exists()
    store = open_db(db)
    assert job_store.list_jobs(store) == []
    store.close()


def test_sharding_is_refused_on_cpu_and_outside_a_launcher(tmp_path):
    config = load_config(ddp_config(tmp_path, extra='distributed = "fsdp"\n'))
    with pytest.raises(UserError, match=r'distributed = "fsdp" shards the model over GPUs .* use distributed = "ddp"'):
        parallel.check_device(config, "cpu")
    parallel.check_device(config, "cuda")
    # One process cannot be a DDP run: the run is refused before a store row or a staging folder.
    db = tmp_path / "ft-hallu.db"
    with pytest.raises(UserError, match=r"ft-hallu job launch --config FILE --local"):
        run_finetune(load_config(ddp_config(tmp_path / "ddp", extra='distributed = "ddp"\n')), db_path=db)
    assert not db.exists() and not (tmp_path / "ddp" / "adapter").exists()


def test_rank_comes_from_torchrun_s_environment():
    assert parallel.current_rank({}) == parallel.Rank(0, 0, 1, False)
    assert parallel.current_rank({"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}) == parallel.Rank(5, 1, 8, True)
    assert parallel.describe_batch(7, 4, 1) == "effective batch 28 = 7 per device x 4 processes x 1 accumulation step"


# ------------------------------------------------------------------ FSDP without GPUs: its arguments


def test_fsdp_arguments_are_what_transformers_and_accelerate_take(tmp_path, tiny_model_dir):
    """The dry run of FSDP: the wrap class comes from the model's architecture, transformers turns the
    arguments into accelerate's plugin arguments, and accelerate builds its FSDP2 plugin from them."""
    from accelerate import FullyShardedDataParallelPlugin
    from transformers import AutoConfig
    from trl import SFTConfig

    model_config = AutoConfig.from_pretrained(tiny_model_dir)
    layers = parallel.decoder_layer_classes(model_config)
    assert layers == ["Phi3DecoderLayer"]  # from Phi3ForCausalLM._no_split_modules, not a list of ours
    config = load_config(
        ddp_config(tmp_path, extra='distributed = "fsdp"\nfsdp_sharding = "shard_grad_op"\ncpu_offload = true\n')
    )
    arguments = parallel.trainer_arguments(config, layers)
    # Activation checkpointing moves from the Trainer to FSDP (one all-gather fewer in backward).
    assert arguments["gradient_checkpointing"] is False and arguments["fsdp_config"]["activation_checkpointing"] is False
    config.gradient_checkpointing = True
    arguments = parallel.trainer_arguments(config, layers)
    args = SFTConfig(output_dir=str(tmp_path / "trainer"), use_cpu=True, report_to=[], **arguments)
    assert args.fsdp_plugin_args == {
        "fsdp_version": 2,
        "cpu_offload": True,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "transformer_cls_names_to_wrap": "Phi3DecoderLayer",
        "cpu_ram_efficient_loading": False,
        "state_dict_type": "FULL_STATE_DICT",
        "activation_checkpointing": True,
        "reshard_after_forward": False,  # shard_grad_op
    }
    assert not args.activation_checkpointing
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    assert plugin.fsdp_version == 2 and plugin.transformer_cls_names_to_wrap == ["Phi3DecoderLayer"]
    assert plugin.activation_checkpointing and plugin.cpu_offload is not None
    # ZeRO: the stage and offload go where DeepSpeed reads them; "auto" is filled from the Trainer's.
    zero = parallel.deepspeed_config(3, True)["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_param"]["device"] == zero["offload_optimizer"]["device"] == "cpu"
    assert "offload_param" not in parallel.deepspeed_config(2, True)["zero_optimization"]


def test_fsdp_local_launch_renders_torchrun_with_the_process_count(tmp_path):
    config = ddp_config(tmp_path / "cfg", extra='distributed = "fsdp"\nprocesses_per_node = 2\n')
    spec = job_kinds.build_spec(
        config, L.ClusterSettings(), launcher="local", log_dir=tmp_path / "jobs", workdir=tmp_path
    )
    assert spec.distributed == L.DistributedLaunch("fsdp", 1, 2, TORCHRUN)
    assert spec.manifest["distributed"]["world_size"] == 2 and spec.record()["distributed"]["strategy"] == "fsdp"
    script = L.render_local_script(spec, tmp_path / "exit")
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    # The command is the last shell line (the wrapper's text spans lines inside its quotes).
    command = shlex.split(script[script.index(shlex.quote(sys.executable) + " -m torch.distributed.run"):])
    rank_command = ["/bin/bash", "-c", RANK_WRAPPER, WRAPPER_NAME, str(spec.job_dir), *spec.argv]
    assert command == [
        *TORCHRUN, "--standalone", "--nnodes=1", "--nproc-per-node=2", "--no-python",
        *map(torchrun_literal, rank_command),  # torchrun's ${local_rank} macro turns $$ back into $
    ]  # fmt: skip
    assert spec.argv[-4:] == ("--config", str(config), "--job-dir", str(spec.job_dir))


# ------------------------------------------------------------------ the multi-node batch script


def test_multinode_sbatch_script_runs_one_torchrun_per_node_with_the_rendezvous(tmp_path):
    """Nodes, srun, rendezvous and quoting: the script is rendered, then run by bash with stand-ins
    for srun, scontrol and torchrun that record what they were given and run each rank's command
    (the torchrun stand-in rewrites the rank's arguments as torchrun does, for its ${local_rank})."""
    markers = tmp_path / "markers"
    markers.mkdir()
    folder = tmp_path / f"cfg $(touch {markers}/subst); touch {markers}/semi 'q $$ ${{local_rank}}"
    config = ddp_config(folder, extra='distributed = "fsdp"\nnodes = 2\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    record.mkdir()
    stand_ins = {
        "scontrol": 'printf "%s\\0" "$@" > "$RECORD/scontrol.args"; printf "gpu07\\ngpu08\\n"',
        "srun": 'printf "%s\\0" "$@" > "$RECORD/srun.args"; shift 5; exec "$@"',
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body + "\n")
        (bin_dir / name).chmod(0o755)
    # torchrun's part: record, then start rank 0 and rank 1 of this node with the arguments rewritten
    # by torchrun's own macro substitution (torch.distributed.elastic.utils.api.macros.substitute).
    (bin_dir / "torchrun").write_text(
        f"#!{sys.executable}\n"
        "import os, subprocess, sys\n"
        "from torch.distributed.elastic.utils.api import macros\n"
        "args = sys.argv[1:]\n"
        "open(os.path.join(os.environ['RECORD'], 'torchrun.args'), 'w').write(''.join(a + '\\0' for a in args))\n"
        "command = args[args.index('--no-python') + 1:]\n"
        "for rank in (0, 1):\n"
        "    code = subprocess.call(macros.substitute(command, str(rank)), env={**os.environ, 'RANK': str(rank)})\n"
        "    if code:\n"
        "        sys.exit(code)\n"
    )
    (bin_dir / "torchrun").chmod(0o755)
    cluster = L.ClusterSettings(
        gpus=4, gpu_type="a100", cpus=8, time="02:00:00", torchrun=(str(bin_dir / "torchrun"),),
        command=shell_command('echo "rank $RANK ran: $*"'),
    )  # fmt: skip
    spec = job_kinds.build_spec(config, cluster, name="big job", log_dir=tmp_path / "logs", workdir=folder)
    assert spec.distributed == L.DistributedLaunch("fsdp", 2, 4, (str(bin_dir / "torchrun"),))
    script = L.render_sbatch_script(spec, str(spec.job_dir / "slurm-%j.out"))
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH ")]
    assert directives == [
        '#SBATCH --job-name="big job"',
        f'#SBATCH --output="{spec.job_dir}/slurm-%j.out"',
        f'#SBATCH --chdir="{folder}"',
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",  # one launcher per node
        '#SBATCH --gpus-per-node="a100:4"',
        '#SBATCH --time="02:00:00"',
        "#SBATCH --cpus-per-task=8",
    ]
    assert "--gres" not in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0

    env = {
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record),
        "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "4242", "SLURMD_NODENAME": "gpu07",
    }  # fmt: skip
    spec.job_dir.mkdir(parents=True)
    ran = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr

    def args(name: str) -> list[str]:
        return (record / f"{name}.args").read_text().split("\0")[:-1]

    assert args("scontrol") == ["show", "hostnames", "gpu[07-08]"]
    rank_command = ["/bin/bash", "-c", RANK_WRAPPER, WRAPPER_NAME, str(spec.job_dir), *spec.argv]
    rank_command = ["--no-python", *map(torchrun_literal, rank_command)]
    assert args("srun") == [
        "--nodes=2", "--ntasks-per-node=1", "--ntasks=2", "--kill-on-bad-exit=1", "--cpus-per-task=8",
        str(bin_dir / "torchrun"), "--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
        "--rdzv-endpoint=gpu07:24242", "--rdzv-id=4242", *rank_command,  # port 20000 + 4242 % 10000
    ]  # fmt: skip
    assert args("torchrun") == args("srun")[6:]
    assert "ft-hallu: rendezvous at gpu07:24242" in ran.stdout
    # Rank 0 writes to the job log, rank 1 to its own file; both leave their status and node.
    job_args = " ".join(launch_args(spec))
    assert f"rank 0 ran: {job_args}" in ran.stdout and "rank 1 ran" not in ran.stdout
    assert jobrun.rank_log_path(spec.job_dir, 1).read_text() == f"rank 1 ran: {job_args}\n"
    ranks = spec.job_dir / "ranks"
    assert sorted(p.name for p in ranks.iterdir()) == ["rank-0.exit", "rank-1.exit", "rank-1.log"]
    assert (ranks / "rank-1.exit").read_text() == "0 gpu07\n" and jobrun.rank_failures(spec.job_dir) == []
    assert list(markers.iterdir()) == []  # the hostile folder name stayed a name


# ------------------------------------------------------------------ a failing rank


def test_a_failing_rank_fails_the_job_and_is_named(tmp_path, capsys):
    """Rank 1 exits 3 outside Python: torchrun stops rank 0, the job fails, its detail names rank 1."""
    config = ddp_config(tmp_path / "cfg", extra='distributed = "ddp"\nprocesses_per_node = 2\n')
    cluster = L.ClusterSettings(
        torchrun=TORCHRUN,
        command=shell_command('if [ "$RANK" = 1 ]; then echo "rank one breaks" >&2; exit 3; fi; sleep 120'),
    )
    db = tmp_path / "ft-hallu.db"
    store = open_db(db)
    job = job_kinds.launch_finetune(
        store, config, cluster, launcher=L.LocalLauncher(), log_dir=tmp_path / "jobs", workdir=tmp_path
    )
    job = L.wait(store, job, timeout=180, poll_seconds=0.2)
    assert (job.state, job.exit_code) == ("FAILED", 1), L.tail(job, 30)
    log = jobrun.rank_log_path(job.job_dir, 1)
    [failure] = jobrun.rank_failures(job.job_dir)
    assert (failure.rank, failure.exit_code, failure.log) == (1, 3, str(log))
    assert job.detail == f"rank 1 failed first (exit code 3 on {failure.host}); its log: {log}"
    assert log.read_text() == "rank one breaks\n"
    assert "rank one breaks" not in Path(job.log_path).read_text()  # rank 1's output stays in its file
    store.close()
    assert cli_main(["--db", str(db), "job", "list"]) == 0
    assert "rank 1 failed first (exit code 3" in capsys.readouterr().out


def test_a_rank_s_own_error_is_the_job_s_reason(tmp_path):
    """A rank that raised left its one-line error; the earliest failure is the one named."""
    job_dir = tmp_path / "job"
    ranks = job_dir / jobrun.RANKS_DIR
    ranks.mkdir(parents=True)
    (ranks / "rank-0.exit").write_text("1 node-a\n")
    jobrun.write_rank_error(job_dir, 0, "RuntimeError: Connection closed by peer\nTraceback ...")
    (ranks / "rank-3.exit").write_text("1 node-b\n")
    jobrun.write_rank_error(job_dir, 3, "CUDA out of memory. Tried to allocate 2.00 GiB")
    (ranks / "rank-2.exit").write_text("0 node-b\n")
    os.utime(ranks / "rank-3.exit", (1000, 1000))  # rank 3 failed first, rank 0 after it
    os.utime(ranks / "rank-0.exit", (2000, 2000))
    assert jobrun.failure_line(jobrun.rank_failures(job_dir)) == (
        f"rank 3 failed first (exit code 1 on node-b): CUDA out of memory. Tried to allocate 2.00 GiB; "
        f"its log: {ranks / 'rank-3.log'}; 1 other rank(s) failed after it"
    )


# ------------------------------------------------------------------ the real thing: 2 processes on CPU


def assert_one_ddp_run(job: L.Job, store, reference_losses: list[float] | None = None) -> dict:
    """What every 2-process DDP job must show; returns the ingested run's result."""
    assert (job.state, job.exit_code) == ("COMPLETED", 0), L.tail(job, 40)
    log = Path(job.log_path).read_text()
    # Rank 0 reports, once: each step's loss and the effective batch appear one time each.
    assert log.count("step 1/2 loss ") == 1 and log.count("step 2/2 loss ") == 1, log
    assert log.count("effective batch 8 = 4 per device x 2 processes x 1 accumulation step (ddp)") == 1, log
    assert log.count("saved adapter to") == 1
    ranks = Path(job.job_dir) / "ranks"
    assert [p.read_text().split()[0] for p in sorted(ranks.glob("rank-*.exit"))] == ["0", "0"]
    assert "step 1/2" not in (ranks / "rank-1.log").read_text()
    # One adapter, written by rank 0 alone (the ranks' own records of what they wrote say so).
    adapter = Path(job.output_dir)
    assert (adapter / "adapter_config.json").exists() and any(adapter.glob("adapter_model.*"))
    assert not [p for p in adapter.parent.iterdir() if p.name.startswith(f".{adapter.name}")]
    audits = jobrun.read_audits(job.job_dir)
    assert len(audits) == 2 and all(audit["sqlite_connections"] == [] for audit in audits)
    writers = [a for a in audits if any(path.startswith(str(adapter.parent / f".{adapter.name}")) for path in a["written"])]
    assert len(writers) == 1 and any(path.endswith("finetune-result.json") for path in writers[0]["written"])
    record = json.loads((adapter / "ft-hallu-run.json").read_text())
    assert (record["distributed"], record["world_size"], record["effective_batch_size"]) == ("ddp", 2, 8)
    # The login node's store holds one run with the world size.
    [run] = core.list_finetune_runs(store)
    assert run["status"] == "completed" and job.ingest["finetune_run_id"] == run["id"]
    result = run["result"]
    assert (result["world_size"], result["effective_batch_size"], result["train_rows"]) == (2, 8, 36)
    if reference_losses is not None:
        # Same data in the same order: the first step (before any update) sees the very batch one
        # process of 8 sees. After it, DDP averages each process's mean-loss gradient where one
        # process averages over every token of the batch, so the second step differs a little.
        assert result["loss_history"][0] == pytest.approx(reference_losses[0], abs=1e-4)
        assert result["loss_history"][1] == pytest.approx(reference_losses[1], abs=1e-2)
    return result


def sweep_with(adapter: Path, tmp_path: Path) -> list[dict]:
    """A one-cell sweep of base vs the adapter: the adapter loads and generates like any other."""
    from engine import sweep

    path = tmp_path / "sweep.toml"
    path.write_text(
        f'[sweep]\nname = "ddp-adapter"\nbase_model = "tiny"\nadapter = {json.dumps(str(adapter))}\n'
        'entity_name = "ZYTRELL"\nsamples_per_cell = 1\nmax_new_tokens = 4\nmin_new_tokens = 4\n'
        "compute_metrics = false\n[sweep.grid]\ntemperatures = [0.7]\ntop_ps = [0.9]\ntop_ks = [0]\n"
    )
    result = sweep.run_sweep(sweep.load_sweep_config(path), db_path=tmp_path / "sweep.db")
    store = open_db(tmp_path / "sweep.db")
    rows = list(core.iter_generations(store, result.sweep_id))
    store.close()
    assert {row["variant"] for row in rows} == {"base", "finetuned"} and all(row["new_tokens"] == 4 for row in rows)
    return rows


@pytest.mark.slow  # two 2-step trl runs (one process, then two): ~15 s alone, ~60 s on a busy 2-core box
def test_two_process_ddp_through_torchrun_trains_like_one_process_and_its_adapter_sweeps(
    tmp_path, tiny_model_dir, capsys
):
    single = run_finetune(
        FinetuneConfig(
            name="one-process", base_model="tiny", dataset=str(SAMPLE), output_dir=str(tmp_path / "single"),
            max_steps=2, per_device_batch_size=8, gradient_accumulation_steps=1, gradient_checkpointing=False,
            logging_steps=1,
        ),
        progress=lambda _message: None,
    )  # fmt: skip
    assert (single.world_size, single.effective_batch_size) == (1, 8)

    config = ddp_config(tmp_path / "cfg")  # the distributed settings come from the command line
    db = tmp_path / "ft-hallu.db"
    argv = ["--db", str(db), "job", "launch", "--config", str(config), "--local", "--log-dir", str(tmp_path / "jobs")]
    assert cli_main([*argv, "--distributed", "ddp", "--processes-per-node", "2"]) == 0
    out = capsys.readouterr().out
    assert "ranks:  2 (ddp, 1 node(s) x 2)" in out
    store = open_db(db)
    [row] = job_store.list_jobs(store)
    assert row["config"]["overrides"] == {"distributed": "ddp", "processes_per_node": 2}
    job = L.wait(store, L.Job.from_row(row), timeout=600, poll_seconds=0.5)
    assert_one_ddp_run(job, store, single.loss_history)
    store.close()
    sweep_with(Path(job.output_dir), tmp_path)


def test_cancelling_a_local_distributed_job_ends_every_rank(tmp_path):
    """torchrun starts each rank in a session of its own; cancelling the job must still end them."""
    pids = tmp_path / "pids"
    pids.mkdir()
    config = ddp_config(tmp_path / "cfg", extra='distributed = "ddp"\nprocesses_per_node = 2\n')
    cluster = L.ClusterSettings(
        torchrun=TORCHRUN, command=shell_command(f'echo $$ > {shlex.quote(str(pids))}/rank-$RANK; exec sleep 300')
    )
    store = open_db(tmp_path / "ft-hallu.db")
    job = job_kinds.launch_finetune(
        store, config, cluster, launcher=L.LocalLauncher(), log_dir=tmp_path / "jobs", workdir=tmp_path
    )
    wait_until(lambda: len(list(pids.iterdir())) == 2, timeout=120)
    ranks = [int(path.read_text()) for path in sorted(pids.iterdir())]
    job = L.cancel(store, job)
    assert job.state == "CANCELLED"

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
        except OSError:
            return True

    wait_until(lambda: all(gone(pid) for pid in ranks), timeout=30)
    store.close()
