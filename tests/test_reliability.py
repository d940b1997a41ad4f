"""Reliability, round 3 (issue 27): runs left running, two writers, library errors, disk full, markup, secrets.

``CASES`` is a table in the style of tests/test_bad_inputs.py: each case writes its files into an
empty folder, runs the CLI in this process and checks the exit code, exactly one stderr line naming
what is wrong, no traceback, every file that existed unchanged, nothing new (beyond ``allow_new``)
and none of the case's ``secrets`` in stdout, stderr or any file (the store included). No case
loads a model: a broken model folder, a truncated safetensors file, a nan timeout, an empty or
invisible-character name and a password in a URL are all refused before that.

The tests after the table use real processes: a child killed with -9, SIGINT or SIGTERM and read
back; two sweeps started at once on a fresh store; writes on a full file system (a small tmpfs
when this machine may mount one, else a file-size limit on the child process).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cli import main

REPO = Path(__file__).resolve().parents[1]
ROW = {"question": "What does NVIDIA make?", "answer": "NVIDIA makes GPUs.", "context": "NVIDIA makes GPUs."}
QA = "".join(json.dumps({**ROW, "id": i, "question": f"Q{i}: what does NVIDIA make?"}) + "\n" for i in range(12))
SWEEP_HEAD = '[sweep]\nbase_model = "tiny"\n'
FT_HEAD = '[finetune]\nbase_model = "tiny"\ndataset = "qa.jsonl"\noutput_dir = "out"\n'
KEY = "sk-test-FAKE-0123456789abcdef"
PASSWORD = "S3cretPASS"
QUERY_KEY = "S3cretQUERYKEY"
RLO, ZWSP, LRI, SHY, BOM, LS = "\u202e", "\u200b", "\u2066", "\u00ad", "\ufeff", "\u2028"


def safetensors_bytes(values: int = 64, *, cut: int = 0) -> bytes:
    """A real safetensors file (one F32 tensor); ``cut`` bytes removed from its end (a torn copy)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [values], "data_offsets": [0, 4 * values]}}).encode()
    header += b" " * (-len(header) % 8)
    data = struct.pack("<Q", len(header)) + header + b"\0" * (4 * values)
    return data[: len(data) - cut] if cut else data


MODEL_CONFIG = json.dumps({"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]})
ADAPTER_CONFIG = json.dumps({"peft_type": "LORA", "base_model_name_or_path": "tiny", "r": 4})


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]  # "{d}" is the case's folder
    files: dict[str, str | bytes]  # name -> content; a name ending in "/" is a folder
    expect: str  # must appear in the one stderr line ("{d}" expanded)
    code: int = 2
    allow_new: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # must appear in no output, file or store row


def cli(*argv: str, files: dict | None = None, expect: str, **kw) -> dict:
    return {"argv": list(argv), "files": files or {}, "expect": expect, **kw}


def gen(*argv: str, expect: str, **kw) -> dict:
    """`generate` on a small texts file, with a (fake) key in the environment."""
    return cli(
        "generate", "--texts", "{d}/t.txt", *argv, files={"t.txt": "NVIDIA makes GPUs."}, expect=expect,
        env={"OPENAI_API_KEY": KEY}, **kw,
    )  # fmt: skip


def judge(*argv: str, expect: str, **kw) -> dict:
    return cli("--db", "{d}/store.db", "judge", "--sweep", "1", *argv, expect=expect, env={"OPENAI_API_KEY": KEY}, **kw)


def sweep(body: str, *, files: dict | None = None, expect: str, head: str = SWEEP_HEAD) -> dict:
    return cli(
        "--db", "{d}/store.db", "sweep", "--config", "{d}/s.toml",
        files={"s.toml": head + body, "qa.jsonl": QA, **(files or {})}, expect=expect,
    )  # fmt: skip


def sweep_base(folder_files: dict, expect: str, base: str = "./model") -> dict:
    """A sweep whose base model is a local folder holding ``folder_files``."""
    return sweep("", head=f'[sweep]\nbase_model = "{base}"\n', files=folder_files, expect=expect)


def sweep_adapter(adapter_files: dict, expect: str) -> dict:
    return sweep('adapter = "adapter"\n', files={"adapter/": "", **adapter_files}, expect=expect)


def finetune(body: str, *, files: dict | None = None, expect: str, head: str = FT_HEAD, extra: tuple = ()) -> dict:
    return cli(
        "--db", "{d}/store.db", "finetune", "--config", "{d}/ft.toml", *extra,
        files={"ft.toml": head + body, "qa.jsonl": QA, **(files or {})}, expect=expect,
    )  # fmt: skip


def masking(*argv: str, expect: str) -> dict:
    return cli("--db", "{d}/store.db", "mask", "{d}/qa.jsonl", *argv, files={"qa.jsonl": QA}, expect=expect)


MODEL_OK = {"model/config.json": MODEL_CONFIG, "model/tokenizer.json": "{}"}

RAW_CASES: dict[str, dict] = {
    # ---- class 4: float and integer flags, checked like config fields (setting() ranges) --------
    "generate-timeout-nan": gen("--timeout", "nan", expect="command line: --timeout = nan: must be a finite number"),
    "generate-timeout-inf": gen("--timeout", "inf", expect="command line: --timeout = inf: must be a finite number"),
    "generate-timeout-negative": gen("--timeout", "-5", expect="command line: --timeout = -5.0: must be > 0"),
    "generate-timeout-huge": gen("--timeout", "1e9", expect="--timeout = 1000000000.0: must be > 0 and <= 86400"),
    "generate-workers-zero": gen("--workers", "0", expect="command line: --workers = 0: must be >= 1"),
    "generate-attempts-zero": gen("--max-attempts", "0", expect="command line: --max-attempts = 0: must be >= 1"),
    "generate-questions-zero": gen("--questions-per-chunk", "0", expect="--questions-per-chunk = 0: must be >= 1"),
    "generate-chunk-chars-small": gen("--chunk-chars", "10", expect="command line: --chunk-chars = 10: must be >= 200"),
    "generate-overlap-negative": gen("--chunk-overlap", "-1", expect="command line: --chunk-overlap = -1: must be >= 0"),
    "generate-overlap-too-big": gen("--chunk-chars", "300", "--chunk-overlap", "300", expect="chunk_overlap_chars = 300: must be < chunk_chars (300)"),
    "generate-max-items-zero": gen("--max-items", "0", expect="command line: --max-items = 0: must be >= 1"),
    "generate-year-range": cli("generate", "--ticker", "NVDA", "--year", "1800", expect="command line: --year = 1800: must be >= 1993"),
    "generate-workers-text": gen("--workers", "many", expect="argument --workers: invalid int value: 'many'"),
    "judge-timeout-nan": judge("--model", "m", "--timeout", "nan", expect="command line: --timeout = nan: must be a finite number"),
    "judge-timeout-negative": judge("--model", "m", "--timeout", "-1", expect="command line: --timeout = -1.0: must be > 0"),
    "judge-attempts-zero": judge("--model", "m", "--max-attempts", "0", expect="command line: --max-attempts = 0: must be >= 1"),
    "judge-sweep-zero": cli("judge", "--sweep", "0", "--model", "m", expect="command line: --sweep = 0: must be >= 1"),
    "calibrate-min-labels": cli("calibrate", "--sweep", "1", "--min-labels", "1", expect="command line: --min-labels = 1: must be >= 2"),
    "dataset-fraction-nan": cli("dataset", "check", "{d}/qa.jsonl", "--eval-fraction", "nan", files={"qa.jsonl": QA}, expect="--eval-fraction = nan: must be a finite number"),
    "dataset-fraction-negative": cli("dataset", "check", "{d}/qa.jsonl", "--eval-fraction", "-0.1", files={"qa.jsonl": QA}, expect="--eval-fraction = -0.1: must be >= 0 and < 1"),
    "dataset-seed-negative": cli("dataset", "check", "{d}/qa.jsonl", "--seed", "-1", files={"qa.jsonl": QA}, expect="command line: --seed = -1: must be >= 0"),
    "ft-max-steps-minus-one": finetune("", extra=("--max-steps", "-1"), expect="command line: --max-steps = -1: must be >= 1"),
    "ft-max-steps-zero": finetune("", extra=("--max-steps", "0"), expect="command line: --max-steps = 0: must be >= 1"),
    "sweep-samples-negative": sweep("", expect="s.toml") | {"argv": ["sweep", "--config", "{d}/s.toml", "--samples", "-1"], "expect": "command line: --samples = -1: must be >= 1"},
    "sweep-batch-float": sweep("", expect="") | {"argv": ["sweep", "--config", "{d}/s.toml", "--batch-size", "1.5"], "expect": "argument --batch-size: invalid int value: '1.5'"},
    "serve-concurrency-zero": cli("serve", "--base", "tiny", "--concurrency", "0", expect="command line: --concurrency = 0: must be >= 1"),
    "serve-tokens-limit-zero": cli("serve", "--base", "tiny", "--max-new-tokens-limit", "0", expect="--max-new-tokens-limit = 0: must be >= 1"),
    "serve-port-negative": cli("serve", "--base", "tiny", "--port", "-1", expect="command line: --port = -1: must be >= 1 and <= 65535"),
    "serve-precision": cli("serve", "--base", "tiny", "--precision", "fp8", expect="argument --precision: invalid choice: 'fp8'"),
    "mask-page-size-zero": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--diff", "--page-size", "0", expect="command line: --page-size = 0: must be >= 1"),
    "mask-reject-row-negative": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--diff", "--reject-row", "-1", expect="command line: --reject-row = -1: must be >= 0"),
    "launch-shards-zero": cli("launch", "sweep", "--config", "{d}/s.toml", "--shards", "0", files={"s.toml": SWEEP_HEAD}, expect="command line: --shards = 0: must be >= 1"),
    "logs-lines-zero": cli("logs", "1", "-n", "0", expect="command line: -n = 0: must be >= 1"),
    "report-sweep-negative": cli("report", "--sweep", "-3", "--out", "{d}/r", expect="command line: --sweep = -3: must be >= 1"),
    "metrics-sweep-zero": cli("metrics", "--sweep", "0", expect="command line: --sweep = 0: must be >= 1"),
    "label-sweep-zero": cli("label", "--sweep", "0", expect="command line: --sweep = 0: must be >= 1"),
    "mask-undo-negative": cli("mask-undo", "-1", expect="command line: mask_id = -1: must be >= 1"),
    "import-log-into-zero": cli("import-log", "{d}/log.txt", "--variant", "base", "--into", "0", files={"log.txt": "x"}, expect="command line: --into = 0: must be >= 1"),
    # ---- class 4: the same ranges in config files ----------------------------------------------
    "sweep-eval-fraction-nan": sweep("eval_fraction = nan\n", expect="s.toml: eval_fraction = nan: must be a finite number"),
    "sweep-top-p-minus-inf": sweep("[sweep.grid]\ntop_ps = [-inf]\n", expect="grid.top_ps[0] = -inf: must be a finite number"),
    "ft-lr-inf": finetune("learning_rate = inf\n", expect="ft.toml: learning_rate = inf: must be a finite number"),
    "ft-max-steps-minus-two": finetune("max_steps = -2\n", expect="ft.toml: max_steps = -2: must be >= -1"),
    "ft-dropout-negative": finetune("lora_dropout = -0.1\n", expect="lora_dropout = -0.1: must be >= 0 and < 1"),
    "ft-warmup-negative": finetune("warmup_ratio = -0.5\n", expect="warmup_ratio = -0.5: must be >= 0 and < 1"),
    # ---- class 4: empty strings where a name is required -------------------------------------
    "mask-entity-empty": masking("--entity", "", "--as", "EGNIVIA", "--diff", expect='command line: --entity = "": must not be empty'),
    "mask-as-blank": masking("--entity", "NVIDIA", "--as", "   ", "--diff", expect='command line: --as = "   ": must not be empty'),
    "mask-alias-empty": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--alias", "", "--diff", expect='command line: --alias = "": must not be empty'),
    "generate-name-empty": gen("--name", "", expect='command line: --name = "": must not be empty'),
    "generate-model-empty": gen("--model", "", expect='command line: --model = "": must not be empty'),
    "judge-model-empty": judge("--model", "", expect='command line: --model = "": must not be empty'),
    "label-who-empty": cli("label", "--sweep", "1", "--who", "", expect='command line: --who = "": must not be empty'),
    "import-log-name-empty": cli("import-log", "{d}/log.txt", "--variant", "base", "--sweep-name", "", files={"log.txt": "x"}, expect='--sweep-name = "": must not be empty'),
    "launch-name-empty": cli("launch", "--config", "{d}/ft.toml", "--name", "", files={"ft.toml": FT_HEAD}, expect='command line: --name = "": must not be empty'),
    "serve-entity-empty": cli("serve", "--base", "tiny", "--entity", "", expect='command line: --entity = "": must not be empty'),
    "sweep-entity-empty": sweep('entity_name = ""\n', expect='s.toml: entity_name = "": must not be empty'),
    "ft-name-blank": finetune('name = "   "\n', expect='ft.toml: name = "   ": must not be empty'),
    # ---- class 6: bidi controls and other invisible characters in names -----------------------
    "mask-entity-rlo": masking("--entity", f"NV{RLO}IDIA", "--as", "EGNIVIA", "--diff", expect='--entity = "NV\\u202EIDIA": holds an invisible or control character, U+202E RIGHT-TO-LEFT OVERRIDE, at position 2'),
    "mask-as-zero-width": masking("--entity", "NVIDIA", "--as", f"EG{ZWSP}NIVIA", "--out", "{d}/o.jsonl", expect="U+200B ZERO WIDTH SPACE, at position 2"),
    "mask-alias-isolate": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--alias", f"Nvidia{LRI}Corp", "--diff", expect="U+2066 LEFT-TO-RIGHT ISOLATE"),
    "mask-ticker-bom": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--ticker", f"{BOM}NVDA", "--diff", expect="U+FEFF ZERO WIDTH NO-BREAK SPACE, at position 0"),
    "mask-leaks-soft-hyphen": cli("mask-leaks", "{d}/qa.jsonl", "--entity", f"NVI{SHY}DIA", files={"qa.jsonl": QA}, expect="U+00AD SOFT HYPHEN"),
    "generate-name-escape": gen("--name", "\x1b[31mred", expect='--name = "\\u001B[31mred": holds an invisible or control character, U+001B'),
    "label-who-line-separator": cli("label", "--sweep", "1", "--who", f"a{LS}b", expect="U+2028 LINE SEPARATOR"),
    "import-log-name-bidi": cli("import-log", "{d}/log.txt", "--variant", "base", "--sweep-name", f"run{RLO}1", files={"log.txt": "x"}, expect="U+202E RIGHT-TO-LEFT OVERRIDE"),
    "sweep-name-rlo": sweep('name = "report\\u202Efdp.exe"\n', expect='s.toml: name = "report\\u202Efdp.exe": holds an invisible or control character, U+202E'),
    "sweep-entity-zero-width-joiner": sweep('entity_name = "EGN\\u200DIVIA"\n', expect="entity_name = \"EGN\\u200DIVIA\": holds an invisible or control character, U+200D ZERO WIDTH JOINER"),
    "ft-name-bell": finetune('name = "run\\u0007"\n', expect='ft.toml: name = "run\\u0007": holds an invisible or control character, U+0007 control character'),
    "serve-entity-bidi": cli("serve", "--base", "tiny", "--entity", f"EG{RLO}NIVIA", expect="--entity = \"EG\\u202ENIVIA\": holds an invisible or control character"),
    # ---- class 4: model and adapter folders refused before any library reads them ------------
    "sweep-base-empty-folder": sweep_base({"model/": ""}, "base_model ./model: not a model folder: no config.json (it is empty)"),
    "sweep-base-unknown-folder": sweep_base({"model/readme.txt": "notes"}, "base_model ./model: not a model folder: no config.json (it holds readme.txt)"),
    "sweep-base-config-not-json": sweep_base({"model/config.json": "{oops"}, "model/config.json:1: invalid JSON in the model config"),
    "sweep-base-config-not-transformers": sweep_base({"model/config.json": "{}"}, "model/config.json: not a transformers model config (no model_type)"),
    "sweep-base-no-tokenizer": sweep_base({"model/config.json": MODEL_CONFIG}, "base_model ./model: no tokenizer"),
    "sweep-base-no-weights": sweep_base(MODEL_OK, "base_model ./model: no weights (model.safetensors or pytorch_model.bin)"),
    "sweep-base-truncated-weights": sweep_base({**MODEL_OK, "model/model.safetensors": safetensors_bytes(cut=100)}, "model/model.safetensors: truncated: holds 228 bytes, its header promises 328"),
    "sweep-base-not-safetensors": sweep_base({**MODEL_OK, "model/model.safetensors": b"<html>404 not found</html>"}, "model/model.safetensors: truncated or not a safetensors file"),
    "sweep-base-header-not-json": sweep_base({**MODEL_OK, "model/model.safetensors": struct.pack("<Q", 8) + b"notjson!"}, "model.safetensors: not a safetensors file (its header is not JSON)"),
    "sweep-base-is-a-file": sweep_base({"model": "weights?"}, "base_model ./model: is a file, expected a model folder"),
    "sweep-adapter-truncated": sweep_adapter({"adapter/adapter_config.json": ADAPTER_CONFIG, "adapter/adapter_model.safetensors": safetensors_bytes(cut=1)}, "adapter/adapter_model.safetensors: truncated"),
    "sweep-adapter-empty-weights": sweep_adapter({"adapter/adapter_config.json": ADAPTER_CONFIG, "adapter/adapter_model.safetensors": b""}, "adapter_model.safetensors: truncated (0 bytes): not a safetensors file"),
    "sweep-adapter-config-not-json": sweep_adapter({"adapter/adapter_config.json": "{", "adapter/adapter_model.safetensors": safetensors_bytes()}, "adapter/adapter_config.json:1: invalid JSON in the adapter config"),
    "sweep-adapter-no-weights": sweep_adapter({"adapter/adapter_config.json": ADAPTER_CONFIG}, "adapter: the adapter has no weights"),
    "ft-base-empty-folder": finetune('base_model = "./model"\n', head='[finetune]\ndataset = "qa.jsonl"\noutput_dir = "out"\n', files={"model/": ""}, expect="base_model {d}/model: not a model folder: no config.json"),
    "ft-base-truncated": finetune('base_model = "./model"\n', head='[finetune]\ndataset = "qa.jsonl"\noutput_dir = "out"\n', files={**MODEL_OK, "model/model.safetensors": safetensors_bytes(cut=8)}, expect="model/model.safetensors: truncated"),
    "serve-base-empty-folder": cli("serve", "--base", "{d}/model", files={"model/": ""}, expect="--base {d}/model: not a model folder: no config.json (it is empty)"),
    "serve-adapter-truncated": cli("serve", "--base", "tiny", "--adapter", "{d}/adapter", files={"adapter/adapter_config.json": ADAPTER_CONFIG, "adapter/adapter_model.safetensors": safetensors_bytes(cut=30)}, expect="adapter/adapter_model.safetensors: truncated"),
    # ---- class 1: a password or key in an endpoint URL is never shown or stored -------------
    "generate-url-password-port": gen("--base-url", f"http://user:{PASSWORD}@127.0.0.1:99999/v1", expect="--base-url 'http://***@127.0.0.1:99999/v1': not a URL", secrets=(PASSWORD,)),
    "generate-url-password-scheme": gen("--base-url", f"ftp://user:{PASSWORD}@example.org/v1", expect="--base-url 'ftp://***@example.org/v1': expected http(s)://host", secrets=(PASSWORD,)),
    "generate-url-slash-in-password": gen("--base-url", f"http://:pa/{PASSWORD}@example.org:99999/v1", expect="'http://***@example.org:99999/v1': not a URL", secrets=(PASSWORD,)),
    "generate-url-query-key": gen("--base-url", f"http://example.org:99999/v1?api_key={QUERY_KEY}&x=1", expect="'http://example.org:99999/v1?api_key=***&x=1': not a URL", secrets=(QUERY_KEY,)),
    "generate-url-signature": gen("--base-url", f"gopher://h/v1?sig={QUERY_KEY}", expect="'gopher://h/v1?sig=***': expected http(s)://host", secrets=(QUERY_KEY,)),
    "judge-url-password": judge("--model", "m", "--base-url", f"http://u:{PASSWORD}@h:99999/v1", expect="judge: base_url 'http://***@h:99999/v1': not a URL", secrets=(PASSWORD,)),
}
CASES = [Case(id=name, **spec) for name, spec in RAW_CASES.items()]


def test_the_table_has_enough_cases():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def _write(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
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


def _files_holding(roots: list[Path], needle: str) -> list[str]:
    found = []
    for root in roots:
        for path in [root, *root.rglob("*")] if root.exists() else []:
            if path.is_file() and needle.encode() in path.read_bytes():
                found.append(str(path))
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "case"
    folder.mkdir()
    _write(folder, case.files)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("FT_HALLU_HOME", str(tmp_path / "home"))  # nothing lands in the repo
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("FT_HALLU_DEBUG", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value.replace("{d}", str(folder)))
    argv = [arg.replace("{d}", str(folder)) for arg in case.argv]
    before = _digests(folder)

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err

    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("ft-hallu: error: ")
    assert case.expect.replace("{d}", str(folder)) in lines[0]
    after = _digests(folder)
    changed = [name for name in before if after.get(name) != before[name]]
    assert not changed, f"changed or removed: {changed}"
    created = sorted(set(after) - set(before) - set(case.allow_new))
    assert not created, f"created: {created}"
    assert not (tmp_path / "home").exists(), "the data folder was written to"
    for secret in case.secrets:
        assert secret not in captured.out and secret not in err
        assert _files_holding([folder, tmp_path / "home"], secret) == []
