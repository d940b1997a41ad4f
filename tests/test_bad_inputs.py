"""Bad and hostile inputs across every verb: one clear line, a non-zero exit, nothing half-written.

Each case of ``CASES`` writes its input files into an empty folder, runs the CLI in this process
(``cli.main(argv)``), and checks: the exit code; exactly one line on stderr, naming the file, field or
option at fault; no traceback; every file that existed before has the same sha256 after; and no new
file appeared (validation happens before any store row, staging folder or output; ``allow_new``
lists what a case may legitimately create, e.g. the store it opened). A case in an old spelling of a
command (``deprecated``) also prints the deprecation note naming the new spelling, before that line. No case loads a model: every
one of them must be refused before that, which is the point.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cli import main

REPO = Path(__file__).resolve().parents[1]
ROW = {"question": "What does NVIDIA make?", "answer": "NVIDIA makes GPUs.", "context": "NVIDIA makes GPUs."}
QA = "".join(json.dumps({**ROW, "id": i, "question": f"Q{i}: what does NVIDIA make?"}) + "\n" for i in range(12))
SWEEP_HEAD = '[sweep]\nbase_model = "tiny"\n'
FT_HEAD = '[finetune]\nbase_model = "tiny"\ndataset = "qa.jsonl"\noutput_dir = "out"\n'


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]  # "{d}" is the case's folder
    files: dict[str, str | bytes]  # name -> content; a name ending in "/" is a folder
    expect: str  # must appear in the one stderr line ("{d}" expanded)
    code: int = 2
    allow_new: tuple[str, ...] = ()  # files the command may create (relative to the folder)
    env: dict[str, str] = field(default_factory=dict)
    deprecated: str = ""  # an old spelling: the note on stderr must name this new one


def sweep(body: str, *extra: str, files: dict | None = None, expect: str = "", **kw) -> dict:
    return {
        "argv": ["sweep", "--config", "{d}/s.toml", *extra],
        "files": {"s.toml": SWEEP_HEAD + body, "qa.jsonl": QA, **(files or {})},
        "expect": expect,
        **kw,
    }


def finetune(body: str, *extra: str, files: dict | None = None, expect: str = "", head: str = FT_HEAD) -> dict:
    return {
        "argv": ["finetune", "--config", "{d}/ft.toml", *extra],
        "files": {"ft.toml": head + body, "qa.jsonl": QA, **(files or {})},
        "expect": expect,
    }


def masking(*argv: str, expect: str, files: dict | None = None, **kw) -> dict:
    return {"argv": ["mask", "plan", "{d}/qa.jsonl", *argv], "files": {"qa.jsonl": QA, **(files or {})}, "expect": expect, **kw}


def cli(*argv: str, files: dict | None = None, expect: str, **kw) -> dict:
    return {"argv": list(argv), "files": files or {}, "expect": expect, **kw}


def _truncated_store() -> bytes:
    """The first 3 KiB of a real store file: a header that promises pages the file does not hold."""
    import tempfile

    from store.db import open_db

    with tempfile.TemporaryDirectory() as folder:
        store = open_db(Path(folder) / "full.db")
        store.db.execute("PRAGMA journal_mode=DELETE")
        store.close()
        return (Path(folder) / "full.db").read_bytes()[:3072]


RAW_CASES: dict[str, dict] = {
    # ---- sweep config: types -------------------------------------------------------------
    "sweep-nan": sweep("[sweep.grid]\ntemperatures = [nan]\n", expect="s.toml: grid.temperatures[0] = nan: must be a finite number"),
    "sweep-inf": sweep("[sweep.grid]\ntemperatures = [inf]\n", expect="grid.temperatures[0] = inf: must be a finite number"),
    "sweep-bool-temperature": sweep("[sweep.grid]\ntemperatures = [true]\n", expect="grid.temperatures[0] = true: must be a number"),
    "sweep-bool-top-k": sweep("[sweep.grid]\ntop_ks = [true]\n", expect="grid.top_ks[0] = true: must be a whole number"),
    "sweep-float-top-k": sweep("[sweep.grid]\ntop_ks = [1.5]\n", expect="grid.top_ks[0] = 1.5: must be a whole number"),
    "sweep-string-seed": sweep('seed = "x"\n', expect='seed = "x": must be a whole number'),
    "sweep-float-samples": sweep("samples_per_cell = 1.5\n", expect="samples_per_cell = 1.5: must be a whole number"),
    "sweep-string-tokens": sweep('max_new_tokens = "many"\n', expect='max_new_tokens = "many": must be a whole number'),
    "sweep-scalar-list": sweep("[sweep.grid]\ntemperatures = 1.0\n", expect="grid.temperatures = 1.0: must be a list of numbers"),
    "sweep-string-list": sweep('[sweep.grid]\ntemperatures = "hot"\n', expect='grid.temperatures = "hot": must be a list of numbers'),
    "sweep-grid-string": sweep("grid = 'big'\n", expect='grid = "big": must be a table'),
    "sweep-bool-mix": sweep('mix_variants = "yes"\n', expect='mix_variants = "yes": must be true or false'),
    "sweep-adapters-list": sweep('adapters = ["a"]\n', expect='adapters = ["a"]: must be a table'),
    # ---- sweep config: ranges and meaning -------------------------------------------------
    "sweep-negative-batch": sweep("batch_size = -3\n", expect="batch_size = -3: must be >= 0"),
    "sweep-negative-eval": sweep('eval_questions = -2\ndataset = "qa.jsonl"\n', expect="eval_questions = -2: must be >= 0"),
    "sweep-top-p-high": sweep("[sweep.grid]\ntop_ps = [1.5]\n", expect="grid.top_ps[0] = 1.5: must be > 0 and <= 1"),
    "sweep-top-p-zero": sweep("[sweep.grid]\ntop_ps = [0.0]\n", expect="grid.top_ps[0] = 0.0: must be > 0"),
    "sweep-temperature-zero": sweep("[sweep.grid]\ntemperatures = [0]\n", expect="grid.temperatures[0] = 0: must be > 0"),
    "sweep-top-k-negative": sweep("[sweep.grid]\ntop_ks = [-1]\n", expect="grid.top_ks[0] = -1: must be >= 0"),
    "sweep-empty-grid": sweep("[sweep.grid]\ntop_ks = []\n", expect="grid.top_ks = []: must hold at least 1"),
    "sweep-zero-samples": sweep("samples_per_cell = 0\n", expect="samples_per_cell = 0: must be >= 1"),
    "sweep-negative-min-tokens": sweep("min_new_tokens = -1\n", expect="min_new_tokens = -1: must be >= 0"),
    "sweep-eval-fraction-one": sweep("eval_fraction = 1.0\n", expect="eval_fraction = 1.0: must be >= 0 and < 1"),
    "sweep-precision": sweep('precision = "fp8"\n', expect='precision = "fp8": must be one of auto, bf16, fp16, fp32'),
    "sweep-empty-name": sweep('name = ""\n', expect='name = "": must not be empty'),
    "sweep-unknown-field": sweep("temperature = 1.0\n", expect="unknown field 'temperature'; did you mean 'grid.temperatures'?"),
    "sweep-unknown-grid-field": sweep("[sweep.grid]\ntop_p = [0.5]\n", expect="unknown field 'grid.top_p'; did you mean 'grid.top_ps'?"),
    "sweep-template": sweep('prompt_template = "About {company}"\n', expect="prompt_template may only use the {name} placeholder"),
    "sweep-eval-needs-dataset": sweep("eval_questions = 2\n", expect="eval_questions needs 'dataset'"),
    "generate-texts-folder": cli("generate", "--texts", "{d}/texts", files={"texts/": ""}, expect="texts: is a folder, expected a file", env={"OPENAI_API_KEY": "sk-test-FAKE-0123456789abcdef"}),
    "generate-texts-latin1": cli("generate", "--texts", "{d}/t.txt", files={"t.txt": b"caf\xe9"}, expect="t.txt: not UTF-8", env={"OPENAI_API_KEY": "sk-test-FAKE-0123456789abcdef"}),
    "import-log-latin1": cli("--db", "{d}/store.db", "import-log", "{d}/log.txt", "--variant", "base", files={"log.txt": b"caf\xe9"}, expect="log.txt: not UTF-8", allow_new=("store.db", "store.db-wal", "store.db-shm")),
    "sweep-dataset-folder": sweep('dataset = "qa"\n', files={"qa/": ""}, expect="dataset {d}/qa: is a folder, expected a file"),
    "sweep-missing-dataset": sweep('dataset = "nope.jsonl"\n', expect="nope.jsonl: no such file"),
    "sweep-missing-adapter": sweep('adapter = "gone"\n', expect="adapter folder {d}/gone does not exist"),
    "sweep-not-an-adapter": sweep('adapter = "plain"\n', files={"plain/": ""}, expect="plain: not a LoRA adapter"),
    "sweep-missing-base-folder": cli("sweep", "--config", "{d}/s.toml", files={"s.toml": '[sweep]\nbase_model = "./no-model"\n'}, expect="base_model ./no-model: no such folder"),
    "sweep-adapter-label-base": sweep('[sweep.adapters]\nbase = "x"\n', expect="adapters.base"),
    "sweep-cli-batch-size": sweep("", "--batch-size", "-1", expect="command line: --batch-size = -1: must be >= 0"),
    "sweep-cli-samples": sweep("", "--samples", "0", expect="command line: --samples = 0: must be >= 1"),
    "sweep-checkpoints-no-adapter": sweep('checkpoints = "all"\n', expect="s.toml: checkpoints needs 'adapter'"),
    "sweep-checkpoints-word": sweep('checkpoints = "some"\nadapter = "x"\n', expect='s.toml: checkpoints = "some": must be "" or "all" or a list of whole numbers'),
    "sweep-checkpoints-step-zero": sweep('checkpoints = [0]\nadapter = "x"\n', expect="s.toml: checkpoints[0] = 0: must be >= 1"),
    "sweep-cli-checkpoints": sweep("", "--checkpoints", "often", expect='command line: --checkpoints = "often": must be'),
    "sweep-control-missing": sweep('control = "facts.jsonl"\n', expect="control {d}/facts.jsonl: no such file"),
    "sweep-control-bad-line": sweep('control = "facts.jsonl"\n', files={"facts.jsonl": '{"question": "Q?"}\n'}, expect="facts.jsonl:1: missing field 'answer'"),
    "sweep-control-not-string": sweep("control = 1\n", expect="s.toml: control = 1: must be a string"),
    # ---- sweep config: the file itself -----------------------------------------------------
    "sweep-invalid-toml": cli("sweep", "--config", "{d}/s.toml", files={"s.toml": "[sweep\n"}, expect="s.toml: invalid TOML"),
    "sweep-config-folder": cli("sweep", "--config", "{d}/s.toml", files={"s.toml/": ""}, expect="s.toml: is a folder"),
    "sweep-config-latin1": cli("sweep", "--config", "{d}/s.toml", files={"s.toml": b'name = "caf\xe9"\n'}, expect="s.toml: not UTF-8"),
    "sweep-config-missing": cli("sweep", "--config", "{d}/none.toml", expect="none.toml: no such file"),
    "sweep-table-string": cli("sweep", "--config", "{d}/s.toml", files={"s.toml": 'sweep = "x"\n'}, expect='s.toml: sweep = "x": must be a table'),
    "sweep-no-config": cli("sweep", expect="the following arguments are required: --config"),
    # ---- fine-tune config ------------------------------------------------------------------
    "ft-lora-r-zero": finetune("lora_r = 0\n", expect="ft.toml: lora_r = 0: must be >= 1"),
    "ft-negative-lr": finetune("learning_rate = -1\n", expect="learning_rate = -1: must be > 0"),
    "ft-nan-lr": finetune("learning_rate = nan\n", expect="learning_rate = nan: must be a finite number"),
    "ft-batch-zero": finetune("per_device_batch_size = 0\n", expect="per_device_batch_size = 0: must be >= 1"),
    "ft-accumulation-zero": finetune("gradient_accumulation_steps = 0\n", expect="gradient_accumulation_steps = 0"),
    "ft-dropout-one": finetune("lora_dropout = 1.0\n", expect="lora_dropout = 1.0: must be >= 0 and < 1"),
    "ft-epochs-zero": finetune("epochs = 0\n", expect="epochs = 0: must be > 0"),
    "ft-epochs-string": finetune('epochs = "three"\n', expect='epochs = "three": must be a number'),
    "ft-mode": finetune('mode = "dora"\n', expect="mode = \"dora\": must be one of lora, qlora, full; did you mean 'lora'?"),
    "ft-lr-scheduler": finetune('lr_scheduler = "cosin"\n', expect="lr_scheduler = \"cosin\": must be one of linear, cosine"),
    "ft-unknown-field": finetune("lora_rank = 8\n", expect="unknown field 'lora_rank'; did you mean 'lora_r'?"),
    "ft-target-modules": finetune("target_modules = 3\n", expect="target_modules = 3: must be a string or a list of strings"),
    "ft-eval-fraction": finetune("eval_fraction = 1.0\n", expect="eval_fraction = 1.0: must be >= 0 and < 1"),
    "ft-warmup-nan": finetune("warmup_ratio = nan\n", expect="warmup_ratio = nan: must be a finite number"),
    "ft-overwrite-string": finetune('overwrite = "yes"\n', expect='overwrite = "yes": must be true or false'),
    "ft-bool-seed": finetune("seed = true\n", expect="seed = true: must be a whole number"),
    "ft-no-dataset": finetune("", head='[finetune]\nbase_model = "tiny"\n', expect="ft.toml: dataset: required"),
    "ft-missing-dataset": finetune('dataset = "gone.jsonl"\n', head='[finetune]\nbase_model = "tiny"\noutput_dir = "out"\n', expect="gone.jsonl: no such file"),
    "ft-dataset-folder": finetune("", head='[finetune]\nbase_model = "tiny"\ndataset = "qa"\n', files={"qa/": ""}, expect="qa"),
    "ft-dataset-latin1": finetune("", head='[finetune]\nbase_model = "tiny"\ndataset = "l.jsonl"\n', files={"l.jsonl": b'{"question": "caf\xe9"}\n'}, expect="l.jsonl: not UTF-8"),
    "ft-output-is-file": finetune("", files={"out": "x"}, expect="out: output_dir is a file"),
    "ft-output-parent-file": finetune("", head='[finetune]\nbase_model = "tiny"\ndataset = "qa.jsonl"\noutput_dir = "blocker/out"\n', files={"blocker": "x"}, expect="blocker is a file"),
    "ft-output-not-empty": finetune("", files={"out/keep.txt": "mine"}, expect="output folder exists and is not empty"),
    "ft-cli-max-steps": finetune("", "--max-steps", "-5", expect="command line: --max-steps = -5: must be >= 1"),
    "ft-distributed-typo": finetune('distributed = "dpp"\n', expect="ft.toml: distributed = \"dpp\": must be one of none, ddp, fsdp, deepspeed; did you mean 'ddp'?"),
    "ft-nodes-zero": finetune("nodes = 0\n", expect="ft.toml: nodes = 0: must be >= 1"),
    "ft-zero-stage": finetune("zero_stage = 4\n", expect="ft.toml: zero_stage = 4: must be one of 1, 2, 3"),
    "ft-processes-without-strategy": finetune("processes_per_node = 2\n", expect='ft.toml: processes_per_node = 2 needs distributed = "ddp", "fsdp" or "deepspeed"'),
    "ft-fsdp-checkpoints": finetune('distributed = "fsdp"\nsave_checkpoints = "epoch"\n', expect='ft.toml: save_checkpoints with distributed = "fsdp" is not supported yet'),
    "ft-fsdp-qlora": finetune('distributed = "fsdp"\nmode = "qlora"\n', expect='ft.toml: mode = "qlora" with distributed = "fsdp" is not supported'),
    "ft-offload-ddp": finetune('distributed = "ddp"\ncpu_offload = true\n', expect='ft.toml: cpu_offload = true needs distributed = "fsdp" or "deepspeed"'),
    "ft-layer-class": finetune('distributed = "fsdp"\nfsdp_layer_classes = ["Phi3 Layer"]\n', expect="ft.toml: fsdp_layer_classes: 'Phi3 Layer' is not a Python class name"),
    "ft-ddp-in-process": finetune('distributed = "ddp"\n', expect='distributed = "ddp" trains in one process per GPU: launch it with `ft-hallu job launch --config FILE --local`'),
    "ft-missing-base-folder": finetune('base_model = "./nothing"\n', head='[finetune]\ndataset = "qa.jsonl"\noutput_dir = "out"\n', expect="base_model ./nothing: no such folder"),
    "ft-save-checkpoints-word": finetune('save_checkpoints = "often"\n', expect='ft.toml: save_checkpoints = "often": must be "none" or "epoch" or a whole number'),
    "ft-save-checkpoints-zero": finetune("", "--save-checkpoints", "0", expect="command line: --save-checkpoints = 0: must be >= 1"),
    "ft-save-checkpoints-full": finetune('mode = "full"\nsave_checkpoints = 5\n', expect='save_checkpoints keeps LoRA adapters; mode = "full" has none'),
    # ---- dataset check ----------------------------------------------------------------------
    "dataset-duplicate-ids": cli("dataset", "check", "{d}/dup.jsonl", files={"dup.jsonl": json.dumps({**ROW, "id": 1}) + "\n" + json.dumps({**ROW, "question": "Other?", "id": 1}) + "\n"}, expect="dup.jsonl:2: id '1' already used at {d}/dup.jsonl:1", code=1),
    "dataset-missing-field": cli("dataset", "check", "{d}/m.jsonl", files={"m.jsonl": '{"question": "q"}\n'}, expect="m.jsonl:1: missing field 'answer'"),
    "dataset-bad-json": cli("dataset", "check", "{d}/b.jsonl", files={"b.jsonl": json.dumps(ROW) + "\n{oops\n"}, expect="b.jsonl:2: invalid JSON"),
    "dataset-folder": cli("dataset", "check", "{d}/qa", files={"qa/": ""}, expect="{d}/qa: is a folder, expected a file"),
    "dataset-latin1": cli("dataset", "check", "{d}/l.jsonl", files={"l.jsonl": b'{"question": "caf\xe9"}\n'}, expect="l.jsonl: not UTF-8"),
    "dataset-array-of-strings": cli("dataset", "check", "{d}/a.json", files={"a.json": '["x"]'}, expect="a.json: item 0: expected an object"),
    "dataset-number-field": cli("dataset", "check", "{d}/n.jsonl", files={"n.jsonl": json.dumps({**ROW, "answer": 3}) + "\n"}, expect="n.jsonl:1: field 'answer' must be a string"),
    "dataset-eval-fraction": cli("dataset", "check", "{d}/qa.jsonl", "--eval-fraction", "1.5", files={"qa.jsonl": QA}, expect="command line: --eval-fraction = 1.5: must be >= 0 and < 1"),
    # ---- mask -------------------------------------------------------------------------------
    "mask-typo": masking("--entity", "NVDIA", "--as", "EGNIVIA", "--out", "{d}/o.jsonl", expect="no occurrence of NVDIA in any field of {d}/qa.jsonl; did you mean NVIDIA (36)?"),
    "mask-typo-preview": masking("--entity", "NVDIA", "--as", "EGNIVIA", "--diff", expect="no occurrence of NVDIA in any field"),
    "mask-as-contains-entity": masking("--entity", "NVIDIA", "--as", "NVIDIAX", "--out", "{d}/o.jsonl", expect="replacement 'NVIDIAX' (NVIDIA (as written)) contains 'NVIDIA'"),
    "mask-alias-contains-entity": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--alias", "Nvidia Corp=Nvidia Co", "--out", "{d}/o.jsonl", expect="replacement 'Nvidia Co' (alias Nvidia Corp) contains 'NVIDIA'"),
    "mask-as-itself": masking("--entity", "NVIDIA", "--as", "nvidia", "--out", "{d}/o.jsonl", expect="new name 'nvidia' is the entity name itself"),
    "mask-no-out": masking("--entity", "NVIDIA", "--as", "EGNIVIA", expect="--out FILE is required"),
    "mask-out-is-input": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--out", "{d}/qa.jsonl", expect="qa.jsonl: the output must be a new file, not the input"),
    "mask-out-exists": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--out", "{d}/old.jsonl", files={"old.jsonl": "keep"}, expect="old.jsonl: already exists"),
    "mask-out-parent-file": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--out", "{d}/blocker/o.jsonl", files={"blocker": "x"}, expect="o.jsonl: cannot write here, {d}/blocker is a file"),
    "mask-all-rejected": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--reject-rule", "name", "--out", "{d}/o.jsonl", expect="are rejected: the output would be an unchanged copy"),
    "mask-input-missing": cli("mask", "plan", "{d}/none.jsonl", "--entity", "NVIDIA", "--as", "EGNIVIA", "--out", "{d}/o.jsonl", expect="none.jsonl: no such file"),
    "mask-bad-page": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--diff", "--page", "-1", expect="command line: --page = -1: must be >= 0"),
    "mask-bad-rule": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--diff", "--reject-rule", "nope", expect="nope"),
    "mask-leak-typo": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--mask-leak", "Hoper", "--out", "{d}/o.jsonl", expect="identifying name 'Hoper': not in any field of {d}/qa.jsonl"),
    "mask-leak-seed-not-int": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--also-mask-leaks", "--leak-seed", "x", "--diff", expect="argument --leak-seed: invalid int value: 'x'"),
    "mask-leaks-missing": cli("mask", "leaks", "{d}/none.jsonl", "--entity", "NVIDIA", expect="none.jsonl: no such file"),
    "mask-leaks-latin1": cli("mask", "leaks", "{d}/l.jsonl", "--entity", "NVIDIA", files={"l.jsonl": b'{"q": "\xff"}\n'}, expect="l.jsonl: not UTF-8"),
    "mask-undo-unknown": cli("--db", "{d}/store.db", "mask", "undo", "99", expect="no masking with id 99", allow_new=("store.db",)),
    "mask-undo-not-a-number": cli("mask", "undo", "x", expect="argument mask_id: invalid int value: 'x'"),
    # ---- the store and the data folder -------------------------------------------------------
    "db-not-sqlite": cli("--db", "{d}/notes.txt", "sweeps", files={"notes.txt": "just text, no database\n" * 50}, expect="notes.txt: cannot be used as an ft-hallu store (file is not a database)"),
    "db-folder": cli("--db", "{d}/db", "sweeps", files={"db/": ""}, expect="db: is a folder, expected an SQLite file"),
    "db-parent-file": cli("--db", "{d}/blocker/x.db", "mask", "list", files={"blocker": "x"}, expect="{d}/blocker is a file"),
    "db-truncated": cli("--db", "{d}/cut.db", "sweeps", files={"cut.db": b"@truncated"}, expect="cut.db: cannot be used as an ft-hallu store"),
    "home-is-file": cli("sweeps", files={"home": "x"}, env={"FT_HALLU_HOME": "{d}/home"}, expect="FT_HALLU_HOME={d}/home: is a file, expected a folder"),
    "profile-no-dataset": cli("--db", "{d}/store.db", "profile", "--dataset", "{d}/none.jsonl", "--entity", "X", expect="--dataset {d}/none.jsonl: no such file"),
    "profile-bad-dataset": cli("--db", "{d}/store.db", "profile", "--dataset", "{d}/qa.jsonl", "--entity", "X", files={"qa.jsonl": '{"question": "q?"}\n'}, expect="qa.jsonl"),
    "profile-empty-entity": cli("--db", "{d}/store.db", "profile", "--dataset", "{d}/qa.jsonl", "--entity", " ", files={"qa.jsonl": QA}, expect="--entity"),
    # ---- report, serve, demo, generate, launch, import-log ------------------------------------
    "report-out-file": cli("--db", "{d}/store.db", "report", "--sweep", "1", "--out", "{d}/r", files={"r": "x"}, expect="--out {d}/r: is a file"),
    "compare-missing-sweep": cli("--db", "{d}/store.db", "compare", "--sweep", "3", expect="sweep 3: no such sweep", allow_new=("store.db", "store.db-wal", "store.db-shm")),
    "compare-json-folder": cli("--db", "{d}/store.db", "compare", "--sweep", "1", "--json", "{d}/out", files={"out/": ""}, expect="--json {d}/out: is a folder"),
    "compare-alpha": cli("--db", "{d}/store.db", "compare", "--sweep", "1", "--alpha", "0", expect="command line: --alpha = 0.0: must be > 0 and < 1"),
    "compare-no-sweep": cli("compare", expect="the following arguments are required: --sweep"),
    "serve-port-range": cli("serve", "--base", "tiny", "--port", "99999", expect="command line: --port = 99999: must be >= 1 and <= 65535"),
    "serve-missing-adapter": cli("serve", "--base", "tiny", "--adapter", "{d}/gone", expect="--adapter: folder {d}/gone does not exist"),
    "serve-share-without-auth": cli("serve", "--base", "tiny", "--share", expect="--share publishes the app"),
    "demo-zero-samples": cli("demo", "--samples", "0", expect="command line: --samples = 0: must be >= 1"),
    "demo-negative-samples": cli("demo", "--samples", "-4", expect="--samples = -4: must be >= 1"),
    "generate-timeout-zero": cli("generate", "--texts", "{d}/t.txt", "--timeout", "0", files={"t.txt": "NVIDIA makes GPUs."}, expect="command line: --timeout = 0.0: must be > 0"),
    "generate-garbage-url": cli("generate", "--texts", "{d}/t.txt", "--base-url", "ht!tp:/ garbage", files={"t.txt": "x"}, expect="--base-url 'ht!tp:/ garbage': expected http(s)://host"),
    "generate-url-port": cli("generate", "--texts", "{d}/t.txt", "--base-url", "http://127.0.0.1:99999/v1", files={"t.txt": "x"}, expect="--base-url 'http://127.0.0.1:99999/v1': not a URL"),
    "launch-cluster-gpus": cli("job", "launch", "--cluster", "{d}/c.toml", "--config", "{d}/ft.toml", files={"c.toml": "gpus = -1\n", "ft.toml": FT_HEAD, "qa.jsonl": QA}, expect="c.toml: gpus = -1: must be >= 0"),
    "launch-cluster-cpus-string": cli("job", "launch", "--cluster", "{d}/c.toml", "--config", "{d}/ft.toml", files={"c.toml": 'cpus = "8"\n', "ft.toml": FT_HEAD, "qa.jsonl": QA}, expect='c.toml: cpus = "8": must be a whole number'),
    "launch-cluster-typo": cli("job", "launch", "--cluster", "{d}/c.toml", "--config", "{d}/ft.toml", files={"c.toml": 'partiton = "gpu"\n', "ft.toml": FT_HEAD, "qa.jsonl": QA}, expect="unknown field 'partiton'; did you mean 'partition'?"),
    "launch-cluster-nan": cli("job", "launch", "--cluster", "{d}/c.toml", "--config", "{d}/ft.toml", files={"c.toml": "gpus = nan\n", "ft.toml": FT_HEAD, "qa.jsonl": QA}, expect="c.toml: gpus = nan: must be a whole number"),
    "job-logs-unknown": cli("--db", "{d}/store.db", "job", "logs", "7", expect="job 7: no such job", allow_new=("store.db",)),
    "job-logs-negative": cli("job", "logs", "1", "-n", "-1", expect="command line: -n = -1: must be >= 1"),
    "launch-nodes-local": cli("--db", "{d}/store.db", "job", "launch", "--config", "{d}/ft.toml", "--local", "--distributed", "ddp", "--nodes", "2", "--log-dir", "{d}/jobs", files={"ft.toml": FT_HEAD, "qa.jsonl": QA}, expect="ft.toml: nodes = 2 needs Slurm", allow_new=("store.db",)),
    "launch-distributed-typo": cli("--db", "{d}/store.db", "job", "launch", "--config", "{d}/ft.toml", "--local", "--distributed", "fsdpp", "--log-dir", "{d}/jobs", files={"ft.toml": FT_HEAD, "qa.jsonl": QA}, expect="command line: --distributed = \"fsdpp\": must be one of none, ddp, fsdp, deepspeed", allow_new=("store.db",)),
    "launch-processes-over-gpus": cli("--db", "{d}/store.db", "job", "launch", "--cluster", "{d}/c.toml", "--config", "{d}/ft.toml", "--distributed", "ddp", "--processes-per-node", "4", "--log-dir", "{d}/jobs", files={"c.toml": "gpus = 2\n", "ft.toml": FT_HEAD, "qa.jsonl": QA}, expect="ft.toml: processes_per_node = 4 but the cluster settings ask for gpus = 2 per node (one process per GPU)", allow_new=("store.db",)),
    "job-cancel-garbage-ref": cli("--db", "{d}/store.db", "job", "cancel", "abc", expect="job 'abc': expected a job number from `ft-hallu job list`", allow_new=("store.db",)),
    "job-ingest-unknown-ref": cli("--db", "{d}/store.db", "job", "ingest", "slurm:99", expect="job slurm:99: no slurm job 99", allow_new=("store.db",)),
    "job-resubmit-no-task": cli("job", "resubmit", "1", expect="the following arguments are required: --task"),
    "job-launch-sweep-shards": cli("--db", "{d}/store.db", "job", "launch", "sweep", "--config", "{d}/s.toml", "--shards", "0", "--local", "--log-dir", "{d}/jobs", files={"s.toml": SWEEP_HEAD}, expect="command line: --shards = 0: must be >= 1", allow_new=("store.db",)),
    # ---- old spellings (one release): the same refusal, after a one-line deprecation note -------
    "old-mask-file": cli("mask", "{d}/none.jsonl", "--entity", "NVIDIA", "--as", "EGNIVIA", "--out", "{d}/o.jsonl", expect="none.jsonl: no such file", deprecated="ft-hallu mask plan FILE"),
    "old-mask-undo": cli("mask-undo", "x", expect="argument mask_id: invalid int value: 'x'", deprecated="ft-hallu mask undo"),
    "old-mask-list": cli("--db", "{d}/blocker/x.db", "mask-list", files={"blocker": "x"}, expect="{d}/blocker is a file", deprecated="ft-hallu mask list"),
    "old-mask-leaks": cli("mask-leaks", "{d}/none.jsonl", "--entity", "NVIDIA", expect="none.jsonl: no such file", deprecated="ft-hallu mask leaks"),
    "old-launch": cli("launch", "--cluster", "{d}/c.toml", "--config", "{d}/ft.toml", files={"c.toml": "gpus = -1\n", "ft.toml": FT_HEAD, "qa.jsonl": QA}, expect="c.toml: gpus = -1: must be >= 0", deprecated="ft-hallu job launch"),
    "old-launch-sweep": cli("launch", "sweep", "--config", "{d}/s.toml", "--cluster", "{d}/c.toml", files={"c.toml": "gpus = -1\n", "s.toml": SWEEP_HEAD}, expect="c.toml: gpus = -1: must be >= 0", deprecated="ft-hallu job launch sweep"),
    "old-launch-resubmit": cli("--db", "{d}/store.db", "launch", "resubmit", "7", "--task", "0", expect="job 7: no such job", allow_new=("store.db",), deprecated="ft-hallu job resubmit"),
    "old-jobs": cli("--db", "{d}/blocker/x.db", "jobs", files={"blocker": "x"}, expect="{d}/blocker is a file", deprecated="ft-hallu job list"),
    "old-logs": cli("--db", "{d}/store.db", "logs", "7", expect="job 7: no such job", allow_new=("store.db",), deprecated="ft-hallu job logs"),
    "old-cancel": cli("--db", "{d}/store.db", "cancel", "7", expect="job 7: no such job", allow_new=("store.db",), deprecated="ft-hallu job cancel"),
    "old-ingest": cli("--db", "{d}/store.db", "ingest", "7", expect="job 7: no such job", allow_new=("store.db",), deprecated="ft-hallu job ingest"),
    # ---- labels ------------------------------------------------------------------------------
    "label-blind-variant": cli("--db", "{d}/store.db", "label", "--sweep", "1", "--blind", "--variant", "base", expect="--blind hides the variant: drop --variant"),
    "label-seed-without-blind": cli("--db", "{d}/store.db", "label", "--sweep", "1", "--seed", "3", expect="--seed orders a blind session: add --blind"),
    "label-export-blind": cli("--db", "{d}/store.db", "label", "export", "{d}/o.csv", "--sweep", "1", "--blind", expect="label export: --blind and --seed are for labelling in the terminal"),
    "label-who-empty": cli("--db", "{d}/store.db", "label", "--sweep", "1", "--who", " ", expect='command line: --who = " ": must not be empty'),
    "label-seed-not-int": cli("--db", "{d}/store.db", "label", "--sweep", "1", "--blind", "--seed", "x", expect="argument --seed: invalid int value: 'x'"),
    "calibrate-agreed-only-no-sweep": cli("--db", "{d}/store.db", "calibrate", "--sweep", "3", "--agreed-only", expect="--sweep 3: no such sweep", allow_new=("store.db", "store.db-wal", "store.db-shm")),
    "import-log-folder": cli("--db", "{d}/store.db", "import-log", "{d}/logs", "--variant", "base", files={"logs/": ""}, expect="logs: is a folder, expected a file", allow_new=("store.db", "store.db-wal", "store.db-shm")),
}
CASES = [Case(id=name, **spec) for name, spec in RAW_CASES.items()]


def test_the_table_has_enough_cases():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def _write(folder: Path, files: dict[str, str | bytes]) -> None:
    truncated = None
    for name, content in files.items():
        path = folder / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == b"@truncated":
            truncated = truncated or _truncated_store()
            content = truncated
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "case"
    folder.mkdir()
    _write(folder, case.files)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("FT_HALLU_HOME", str(tmp_path / "home"))  # nothing lands in the repo
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("FT_HALLU_DEBUG", raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value.replace("{d}", str(folder)))
    argv = [arg.replace("{d}", str(folder)) for arg in case.argv]
    before = _digests(folder)

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err

    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code, err
    assert "Traceback" not in err
    if case.deprecated:
        note = lines.pop(0)
        assert note.startswith("ft-hallu: note: ") and note.endswith(f"use `{case.deprecated}`"), err
    assert len(lines) == 1, err
    assert lines[0].startswith("ft-hallu: error: ")
    assert case.expect.replace("{d}", str(folder)) in lines[0]
    after = _digests(folder)
    changed = [name for name in before if after.get(name) != before[name]]
    assert not changed, f"changed or removed: {changed}"
    created = sorted(set(after) - set(before) - set(case.allow_new))
    assert not created, f"created: {created}"
    assert not (tmp_path / "home").exists() or "home" in case.allow_new, "the data folder was written to"


# ---------------------------------------------------------------- beyond the table


def test_debug_variable_shows_the_traceback(tmp_path, capsys, monkeypatch):
    (tmp_path / "s.toml").write_text(SWEEP_HEAD + "[sweep.grid]\ntemperatures = [nan]\n")
    monkeypatch.setenv("FT_HALLU_DEBUG", "1")
    assert main(["sweep", "--config", str(tmp_path / "s.toml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].endswith("must be a finite number")


def test_broken_pipe_ends_quietly(tmp_path):
    """`ft-hallu mask leaks ... | head -1`: the reader leaves early; no BrokenPipeError on stderr."""
    data = tmp_path / "leaky.jsonl"
    data.write_text("".join(json.dumps({**ROW, "id": i}) + "\n" for i in range(3000)))
    command = f"{sys.executable} -m cli mask leaks {data} --entity NVIDIA | head -1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "FT_HALLU_HOME": str(tmp_path / "home")},
        check=False,
    )
    assert done.stdout.startswith("leak report:")
    assert done.stderr == ""
    assert done.returncode in (1, 141)  # 1: leaks found and all written; 141: stopped by the pipe


def test_a_sweep_whose_process_died_reads_as_interrupted(tmp_path, capsys):
    db = tmp_path / "store.db"
    script = (
        "import os, sys; from store import core, open_db\n"
        f"s = open_db({str(db)!r})\n"
        "core.get_or_create_sweep(s, name='killed', source='engine', base_model='tiny', adapter_dir=None,"
        " config_hash='h1', config={}, expected_rows=4)\n"
        "os._exit(9)  # dies like kill -9: no clean-up runs\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False)
    assert main(["--db", str(db), "sweeps"]) == 0
    listing = capsys.readouterr().out
    assert "interrupted" in listing and "running" not in listing
    from store import core, open_db

    row = core.list_sweeps(open_db(db))[0]
    assert row["status"] == "interrupted" and "is gone" in row["error"]


def test_a_sweep_failing_after_its_row_is_marked_failed(tmp_path, monkeypatch, capsys):
    """An offline hub id fails inside the model loader (no weights are read): the row says why."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FT_HALLU_HOME", str(tmp_path / "home"))
    config = tmp_path / "s.toml"
    config.write_text('[sweep]\nbase_model = "nobody/no-such-model"\n')
    db = tmp_path / "store.db"
    assert main(["--db", str(db), "sweep", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ft-hallu: error: ")
    from store import core, open_db

    row = core.list_sweeps(open_db(db))[0]
    assert row["status"] == "failed" and row["error"]


def _kill_during_mask(tmp_path: Path, when: str) -> tuple[Path, Path]:
    """Run `ft-hallu mask` in a child that SIGKILLs itself just before (or after) the output rename."""
    data = tmp_path / "qa.jsonl"
    data.write_text(QA)
    out = tmp_path / "masked.jsonl"
    db = tmp_path / "store.db"
    hook = (
        "import os, signal, sys\n"
        "real = os.replace\n"
        "def replace(a, b, *k, **kw):\n"
        f"    if {when!r} == 'after': real(a, b, *k, **kw)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.replace = replace\n"
        "from cli import main\n"
        f"main(['--db', {str(db)!r}, 'mask', 'plan', {str(data)!r}, '--entity', 'NVIDIA', '--as', 'EGNIVIA',"
        f" '--out', {str(out)!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", hook], cwd=REPO, capture_output=True, check=False)
    assert done.returncode == -9
    return out, db


def test_mask_killed_before_rename_is_interrupted_and_its_temp_file_removed(tmp_path, capsys):
    out, db = _kill_during_mask(tmp_path, "before")
    assert not out.exists() and list(tmp_path.glob(".masked.jsonl.*.tmp"))  # the leftover
    assert main(["--db", str(db), "mask", "list"]) == 0
    captured = capsys.readouterr()
    assert "marked interrupted, removed 1 temp file(s)" in captured.err
    assert " interrupted " in captured.out
    assert not list(tmp_path.glob(".masked.jsonl.*"))


def test_mask_killed_after_rename_is_recovered_and_can_be_undone(tmp_path, capsys):
    out, db = _kill_during_mask(tmp_path, "after")
    assert out.exists()
    assert main(["--db", str(db), "mask", "undo", "1"]) == 0
    captured = capsys.readouterr()
    assert "was complete; recorded as done" in captured.err
    assert f"removed {out}" in captured.out
    assert not out.exists()


def test_leftover_staging_of_a_dead_process_is_found(tmp_path):
    from engine.files import leftover_temp_paths, remove_leftovers

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(child.stdout)
    target = tmp_path / "adapter"
    stale = tmp_path / f".adapter.{dead}.abc.staging"
    stale.mkdir()
    live = tmp_path / f".adapter.{os.getpid()}.abc.staging"
    live.mkdir()
    assert leftover_temp_paths(target) == [stale]
    assert remove_leftovers(target) == [stale] and not stale.exists() and live.exists()


def test_truncated_store_fixture_is_really_sqlite_but_incomplete():
    data = _truncated_store()
    assert data.startswith(b"SQLite format 3\x00")
    with pytest.raises(sqlite3.DatabaseError):
        conn = sqlite3.connect(":memory:")
        conn.deserialize(data)
        conn.execute("select * from sqlite_master").fetchall()


def test_sweep_prompt_keys_are_unique_when_ids_repeat(tmp_path):
    """Two different held-out questions sharing an id must not collapse into one prompt key."""
    from engine import dataset as ds
    from engine.sweep import SweepConfig, build_prompts

    rows = [{**ROW, "question": f"Question {i} about NVIDIA?", "id": 7} for i in range(20)]
    data = tmp_path / "same-ids.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = SweepConfig(base_model="tiny", dataset=str(data), eval_questions=5, eval_fraction=0.5)
    prompts = build_prompts(config)
    keys = [p.prompt_id for p in prompts]
    assert len(keys) == len(set(keys)) == 6
    assert keys[1:3] == ["eval-7", "eval-7#2"]
    assert len({p.question for p in prompts[1:]}) == 5
    assert ds.check(data).duplicate_ids["7"][:2] == [f"{data}:1", f"{data}:2"]


def test_unreachable_endpoint_is_named(tmp_path, capsys, monkeypatch):
    pytest.importorskip("financial_datasets")
    monkeypatch.setenv("FT_HALLU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-FAKE-0123456789abcdef")
    texts = tmp_path / "t.txt"
    texts.write_text("NVIDIA makes GPUs and sells them to data centers around the world.\n")
    url = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
    argv = ["--db", str(tmp_path / "s.db"), "generate", "--texts", str(texts), "--base-url", url,
            "--max-attempts", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"connection to {url} failed" in err[0]
