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
    return cli("--db", "{d}/store.db", "mask", "plan", "{d}/qa.jsonl", *argv, files={"qa.jsonl": QA}, expect=expect)


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
    "launch-shards-zero": cli("job", "launch", "sweep", "--config", "{d}/s.toml", "--shards", "0", files={"s.toml": SWEEP_HEAD}, expect="command line: --shards = 0: must be >= 1"),
    "logs-lines-zero": cli("job", "logs", "1", "-n", "0", expect="command line: -n = 0: must be >= 1"),
    "report-sweep-negative": cli("report", "--sweep", "-3", "--out", "{d}/r", expect="command line: --sweep = -3: must be >= 1"),
    "metrics-sweep-zero": cli("metrics", "--sweep", "0", expect="command line: --sweep = 0: must be >= 1"),
    "label-sweep-zero": cli("label", "--sweep", "0", expect="command line: --sweep = 0: must be >= 1"),
    "mask-undo-negative": cli("mask", "undo", "-1", expect="command line: mask_id = -1: must be >= 1"),
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
    "launch-name-empty": cli("job", "launch", "--config", "{d}/ft.toml", "--name", "", files={"ft.toml": FT_HEAD}, expect='command line: --name = "": must not be empty'),
    "serve-entity-empty": cli("serve", "--base", "tiny", "--entity", "", expect='command line: --entity = "": must not be empty'),
    "sweep-entity-empty": sweep('entity_name = ""\n', expect='s.toml: entity_name = "": must not be empty'),
    "ft-name-blank": finetune('name = "   "\n', expect='ft.toml: name = "   ": must not be empty'),
    # ---- class 6: bidi controls and other invisible characters in names -----------------------
    "mask-entity-rlo": masking("--entity", f"NV{RLO}IDIA", "--as", "EGNIVIA", "--diff", expect='--entity = "NV\\u202EIDIA": holds an invisible or control character, U+202E RIGHT-TO-LEFT OVERRIDE, at position 2'),
    "mask-as-zero-width": masking("--entity", "NVIDIA", "--as", f"EG{ZWSP}NIVIA", "--out", "{d}/o.jsonl", expect="U+200B ZERO WIDTH SPACE, at position 2"),
    "mask-alias-isolate": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--alias", f"Nvidia{LRI}Corp", "--diff", expect="U+2066 LEFT-TO-RIGHT ISOLATE"),
    "mask-ticker-bom": masking("--entity", "NVIDIA", "--as", "EGNIVIA", "--ticker", f"{BOM}NVDA", "--diff", expect="U+FEFF ZERO WIDTH NO-BREAK SPACE, at position 0"),
    "mask-leaks-soft-hyphen": cli("mask", "leaks", "{d}/qa.jsonl", "--entity", f"NVI{SHY}DIA", files={"qa.jsonl": QA}, expect="U+00AD SOFT HYPHEN"),
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
    "generate-url-query-refused": gen("--base-url", f"http://127.0.0.1:9/v1?key={QUERY_KEY}", expect="--base-url 'http://127.0.0.1:9/v1?key=***': a query string is not supported", secrets=(QUERY_KEY,)),
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


# ---------------------------------------------------------------- real processes: helpers

CHILD = "import sys; from cli import main; sys.exit(main(sys.argv[1:]))"
# A child that imports everything first and waits at a barrier file: two of them start together.
BARRIER_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from cli import main
    import engine.sampling  # torch and transformers, before the barrier
    barrier = sys.argv[1]
    open(f"{barrier}.ready.{os.getpid()}", "w").close()
    while not os.path.exists(barrier):
        time.sleep(0.002)
    sys.exit(main(sys.argv[2:]))
    """
)


def child_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # the loaders' bars are no ft-hallu line
        "FT_HALLU_EMBEDDINGS": "0",
        **extra,
    }
    env.pop("FT_HALLU_DEBUG", None)
    return env


def start_cli(*argv: str, cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        cwd=cwd,
        env=child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows_of(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows as the file holds them, read with plain sqlite3 (no ft-hallu code, no live status)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_until(predicate, child: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if child.poll() is not None:
            out, err = child.communicate()
            pytest.fail(f"the child ended before {what}: {err[-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def has_rows(db: Path, table: str) -> bool:
    try:
        return bool(db.exists() and rows_of(db, f"select count(*) from {table}")[0][0])
    except sqlite3.OperationalError:  # the file or the table does not exist yet
        return False


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def write_qa(folder: Path, rows: int = 12) -> Path:
    path = folder / "qa.jsonl"
    path.write_text(
        "".join(json.dumps({**ROW, "id": i, "question": f"Q{i}: what does NVIDIA make?"}) + "\n" for i in range(rows))
    )
    return path


# ---------------------------------------------------------------- class 2: one liveness rule


@pytest.mark.slow  # two fine-tune processes (imports dominate): 87 s on 2 loaded cores
def test_a_finetune_killed_with_sigkill_is_interrupted_also_after_its_rerun(tmp_path, tiny_model_dir):
    write_qa(tmp_path)
    config = tmp_path / "ft.toml"
    config.write_text(
        FT_HEAD + "max_steps = 5000\nper_device_batch_size = 2\ngradient_accumulation_steps = 1\n"
        "gradient_checkpointing = false\n"
    )
    db = tmp_path / "store.db"
    child = start_cli("--db", str(db), "finetune", "--config", str(config), cwd=tmp_path)
    wait_until(lambda: has_rows(db, "finetune_runs"), child, "the run row")
    child.kill()  # -9: nothing of ft-hallu runs any more
    child.communicate(timeout=60)
    assert rows_of(db, "select status from finetune_runs") == [("running",)]  # what the file says now

    again = subprocess.run(
        [sys.executable, "-c", CHILD, "--db", str(db), "finetune", "--config", str(config), "--max-steps", "1"],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    rows = rows_of(db, "select id, status, error, pid from finetune_runs order by id")
    assert [(row[0], row[1]) for row in rows] == [(1, "interrupted"), (2, "completed")]
    assert rows[0][2] == f"process {child.pid} on {os.uname().nodename} is gone"
    from engine.workspace import Workspace

    with Workspace.open(db) as workspace:
        assert [run.status for run in workspace.finetune_runs()] == ["completed", "interrupted"]
    assert not list(tmp_path.glob(".out.*"))  # the killed run's staging folder was cleared by the rerun


def test_a_sweep_stopped_by_sigterm_records_the_signal_and_frees_its_cells(tmp_path, tiny_model_dir):
    config = tmp_path / "s.toml"
    config.write_text(
        SWEEP_HEAD + "samples_per_cell = 50\nmax_new_tokens = 64\nbatch_size = 2\ncompute_metrics = false\n"
    )
    db = tmp_path / "store.db"
    child = start_cli("--db", str(db), "sweep", "--config", str(config), cwd=tmp_path)
    wait_until(lambda: has_rows(db, "sweeps"), child, "the sweep row")
    child.send_signal(signal.SIGTERM)
    _out, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert error_lines(err)[-1] == "ft-hallu: interrupted by SIGTERM"
    assert rows_of(db, "select status, error from sweeps") == [("interrupted", "interrupted by SIGTERM")]
    assert rows_of(db, "select count(*) from sweep_leases") == [(0,)]


def test_ctrl_c_during_generate_leaves_the_run_interrupted_and_no_password_anywhere(tmp_path):
    pytest.importorskip("financial_datasets")
    from openai_server import Behavior, running_stub

    texts = tmp_path / "t.txt"
    texts.write_text(" ".join(f"NVIDIA sentence number {i} about its data center business." for i in range(60)))
    db, out = tmp_path / "store.db", tmp_path / "out"
    with running_stub(Behavior(latency_s=2.0)) as stub:
        url = stub.base_url.replace("http://", f"http://user:{PASSWORD}@")
        child = start_cli(
            "--db", str(db), "generate", "--texts", str(texts), "--out", str(out), "--base-url", url,
            "--workers", "1", "--chunk-chars", "200", "--chunk-overlap", "0", "--no-progress",
            cwd=tmp_path, OPENAI_API_KEY=KEY,
        )  # fmt: skip
        wait_until(lambda: bool(stub.requests), child, "the first request")
        child.send_signal(signal.SIGINT)
        stdout, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert "Traceback" not in err and error_lines(err)[-1] == "ft-hallu: interrupted by SIGINT (Ctrl-C)"
    rows = rows_of(db, "select status, error, base_url, config_json from generation_runs")
    assert rows[0][:2] == ("interrupted", "interrupted by SIGINT (Ctrl-C)")
    assert rows[0][2] == stub.base_url.replace("http://", "http://***@")
    for text in (stdout, err, *map(str, rows[0])):
        assert PASSWORD not in text and KEY not in text
    assert _files_holding([tmp_path], PASSWORD) == [] and _files_holding([tmp_path], KEY) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["endpoint"]["base_url"].startswith("http://***@127.0.0.1:")


def test_a_judge_stopped_by_sigterm_and_runs_whose_process_died_read_as_interrupted(tmp_path):
    from claims_sweep import make_scored_sweep
    from openai_server import Behavior, running_stub

    from store import runs

    store, sweep_id = make_scored_sweep(tmp_path)
    store.close()
    db = tmp_path / "ft.db"
    with running_stub(Behavior(latency_s=3.0)) as stub:
        child = start_cli(
            "--db", str(db), "judge", "--sweep", str(sweep_id), "--model", "judge", "--base-url", stub.base_url,
            cwd=tmp_path, OPENAI_API_KEY=KEY,
        )  # fmt: skip
        wait_until(lambda: bool(stub.requests), child, "the first judge request")
        child.send_signal(signal.SIGTERM)
        _out, err = child.communicate(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM and "Traceback" not in err
    assert rows_of(db, "select kind, target, status, error from runs") == [
        ("judge", f"sweep {sweep_id}", "interrupted", "interrupted by SIGTERM")
    ]
    # An ingest (or any run of the runs table) whose process died without a word: read back as gone.
    script = (
        "import os; from store import open_db, runs\n"
        f"runs.start_run(open_db({str(db)!r}), kind='ingest', target='job 7')\n"
        "os._exit(9)\n"
    )
    died = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=child_env(), check=False)
    assert died.returncode == 9
    from store import open_db

    ingest = runs.list_runs(open_db(db), "ingest")[0]
    assert ingest["status"] == "interrupted" and ingest["error"].endswith("is gone")


def test_a_reused_pid_is_not_the_run_s_process(tmp_path):
    """The row records when its process started: a later process with the same pid is another one."""
    from store import core, open_db

    store = open_db(tmp_path / "store.db")
    run_id = core.start_finetune_run(
        store, name="x", mode="lora", base_model="tiny", dataset_path="d", output_dir="o", config={}
    )
    assert core.get_finetune_run(store, run_id)["status"] == "running"  # this very process
    store.db["finetune_runs"].update(run_id, {"pid_started": 1.0})  # as if an older process had this pid
    row = core.get_finetune_run(store, run_id)
    assert row["status"] == "interrupted" and row["error"].endswith("is gone")


# ---------------------------------------------------------------- class 3: two writers on a new store


def test_many_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    db = tmp_path / "new.db"
    barrier = tmp_path / "go"
    script = (
        "import os, sys, time\nfrom store import open_db\n"
        f"while not os.path.exists({str(barrier)!r}): time.sleep(0.002)\n"
        f"open_db({str(db)!r}).close(); print('ok')\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]  # fmt: skip
    time.sleep(1.0)  # every child has imported and waits
    barrier.touch()
    results = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * 6, [err for _out, err in results]
    applied = rows_of(db, "select migration_set, name, count(*) from _sqlite_migrations group by 1, 2")
    assert applied and all(count == 1 for _set, _name, count in applied)


@pytest.mark.slow  # two sweep processes and the tiny model: 45 s on 2 loaded cores
def test_two_sweeps_started_together_on_a_new_store_share_the_cells(tmp_path, tiny_model_dir):
    config = tmp_path / "s.toml"
    config.write_text(
        SWEEP_HEAD + "samples_per_cell = 2\nmax_new_tokens = 4\nbatch_size = 4\ncompute_metrics = false\n"
        "[sweep.grid]\ntemperatures = [0.5, 1.0]\ntop_ps = [0.5, 1.0]\ntop_ks = [0, 10]\n"
    )
    db, barrier = tmp_path / "store.db", tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", BARRIER_CHILD, str(barrier), "--db", str(db), "sweep", "--config", str(config)],
            cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    deadline = time.monotonic() + 180
    while len(list(tmp_path.glob("go.ready.*"))) < 2:
        assert time.monotonic() < deadline and all(c.poll() is None for c in children), "children not ready"
        time.sleep(0.1)
    barrier.touch()
    results = [child.communicate(timeout=600) for child in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert "cannot be used" not in err and "locked" not in err and "Traceback" not in err
        assert "stored first by another process" not in out
    new_rows = [int(out.split(" new rows")[0].rsplit(" ", 1)[-1]) for out, _err in results]
    stored = rows_of(db, "select count(*) from generations")[0][0]
    assert stored == 16 and sum(new_rows) == stored  # the counts add up: no cell was sampled twice
    assert rows_of(db, "select count(*) from sweeps") == [(1,)]
    assert rows_of(db, "select status from sweeps") == [("completed",)]
    assert rows_of(db, "select count(*) from sweep_leases") == [(0,)]



# ---------------------------------------------------------------- class 5: a full disk


@pytest.fixture
def small_disk(tmp_path):
    """``make(name, kib)``: a folder on a file system that holds ``kib`` KiB.

    A tmpfs where this machine lets the test mount one (root); otherwise ``make`` returns a
    file-size limit for the child process instead (writes past it fail with EFBIG, the kernel's
    own error), which the child sets with :func:`limited`.
    """
    mounted: list[Path] = []

    def make(name: str, kib: int) -> int | None:
        folder = tmp_path / name
        folder.mkdir()
        if os.geteuid() == 0 and not os.environ.get("FT_HALLU_TEST_NO_MOUNT"):
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0777", "tmpfs", str(folder)],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                mounted.append(folder)
                return None
        return kib * 1024

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def limited(limit: int | None):
    """preexec_fn for a child whose writes beyond ``limit`` bytes fail (None: no limit)."""
    if limit is None:
        return None

    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run_cli(argv: list[str], *, cwd: Path, limit: int | None = None, timeout: float = 600, **env: str):
    return subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        cwd=cwd, env=child_env(**env), capture_output=True, text=True, timeout=timeout,
        preexec_fn=limited(limit),
    )  # fmt: skip


def quiet_store(path: Path):
    """A migrated store whose WAL is folded in (a child under a file-size limit only appends to it)."""
    from store import open_db

    store = open_db(path)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return store


def test_report_on_a_full_disk_names_the_folder_and_leaves_nothing(tmp_path, small_disk):
    from claims_sweep import make_scored_sweep

    store, sweep_id = make_scored_sweep(tmp_path)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    limit = small_disk("disk", 40)
    out = tmp_path / "disk" / "reports" / "sweep1"
    done = run_cli(["--db", str(tmp_path / "ft.db"), "report", "--sweep", str(sweep_id), "--out", str(out)],
                   cwd=tmp_path, limit=limit)  # fmt: skip
    assert done.returncode == 2, done.stderr
    # progress lines (the study section's computation) may come first; the failure is one line, the last
    lines = error_lines(done.stderr)
    assert lines[-1] == f"ft-hallu: error: {out}: disk full while writing the report; nothing was written"
    assert [line for line in lines if "error" in line or "Traceback" in line] == lines[-1:], lines
    assert list((tmp_path / "disk").iterdir()) == []  # no report, no figures/, no staging, no reports/


@pytest.mark.slow  # one fine-tune process: 35 s on 2 loaded cores
def test_a_finetune_saving_to_a_full_disk_fails_in_one_line_and_keeps_nothing(tmp_path, small_disk, tiny_model_dir):
    write_qa(tmp_path)
    limit = small_disk("disk", 160)  # the tiny adapter is 231 KB
    config = tmp_path / "ft.toml"
    config.write_text(
        '[finetune]\nbase_model = "tiny"\ndataset = "qa.jsonl"\noutput_dir = "disk/adapter"\nmax_steps = 1\n'
        "gradient_checkpointing = false\n"
    )
    db = tmp_path / "store.db"
    quiet_store(db).close()
    done = run_cli(["--db", str(db), "finetune", "--config", str(config)], cwd=tmp_path, limit=limit)
    out = tmp_path / "disk" / "adapter"
    assert done.returncode == 2, done.stderr
    line = f"ft-hallu: error: {out}: disk full while saving the adapter; nothing was kept"
    assert error_lines(done.stderr)[-1] == line and "Traceback" not in done.stderr
    assert rows_of(db, "select status, error from finetune_runs") == [("failed", line.removeprefix("ft-hallu: error: "))]
    assert list((tmp_path / "disk").iterdir()) == []  # no adapter folder, no staging folder


def test_a_mask_whose_output_does_not_fit_names_the_file_and_records_the_failure(tmp_path, small_disk):
    data = tmp_path / "qa.jsonl"
    data.write_text(QA * 60)  # about 80 KB of output
    limit = small_disk("disk", 48)
    db = tmp_path / "store.db"
    quiet_store(db).close()
    out = tmp_path / "disk" / "masked.jsonl"
    done = run_cli(["--db", str(db), "mask", "plan", str(data), "--entity", "NVIDIA", "--as", "EGNIVIA", "--out", str(out)],
                   cwd=tmp_path, limit=limit)  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = error_lines(done.stderr)
    assert line.startswith(f"ft-hallu: error: {out}: ") and ("No space left" in line or "File too large" in line)
    assert list((tmp_path / "disk").iterdir()) == []  # no output, no temp file
    assert rows_of(db, "select status from masks") == [("failed",)]
    assert rows_of(db, "select count(*) from datasets") == [(0,)]


MASK_THEN_FULL_STORE = textwrap.dedent(
    """
    import os, resource, signal, sys
    real_replace = os.replace
    out = sys.argv[1]

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if str(dst) == out:  # the output is in place: from now on the disk is full
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))

    os.replace = replace
    from cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def test_a_mask_whose_store_record_fails_takes_its_output_back(tmp_path, capsys):
    """Output written, then the store cannot record it: both or neither, so neither (exit 2, one line)."""
    data = write_qa(tmp_path)
    db, out = tmp_path / "store.db", tmp_path / "masked.jsonl"
    quiet_store(db).close()
    argv = ["--db", str(db), "mask", "plan", str(data), "--entity", "NVIDIA", "--as", "EGNIVIA", "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", MASK_THEN_FULL_STORE, str(out), *argv], cwd=tmp_path,
                          env=child_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = error_lines(done.stderr)
    assert line.startswith(f"ft-hallu: error: {db}: ") and "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".masked.jsonl.*"))
    assert main(["--db", str(db), "mask", "list"]) == 0  # the writer is gone: settled, never 'done'
    listing = capsys.readouterr()
    assert " interrupted " in listing.out and " done " not in listing.out
    assert rows_of(db, "select count(*) from datasets") == [(0,)]


# ---------------------------------------------------------------- class 6: markup and prompt lengths

UNESCAPED_LINK = __import__("re").compile(r"(?<!\\)\]\(javascript")  # the hostile text as a live link
HOSTILE = "<script>alert('x')</script> <img src=x onerror=alert(1)> **bold** [link](javascript:alert(1)) | `code`"


def test_report_markdown_and_html_show_hostile_text_as_text(tmp_path, monkeypatch):
    from claims_sweep import ANSWERS, make_scored_sweep

    from engine.report import write_report

    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    answers = {variant: [HOSTILE + " " + text for text in texts] for variant, texts in ANSWERS.items()}
    store, sweep_id = make_scored_sweep(tmp_path, answers)
    store.db["sweeps"].update(sweep_id, {"name": "<script>alert('name')</script>", "base_model": "**m**<b>"})
    paths = write_report(store, sweep_id, tmp_path / "report")
    markdown = paths.markdown.read_text(encoding="utf-8")
    page = paths.html.read_text(encoding="utf-8")
    for text in (markdown, page):
        assert "<script" not in text and "<img src=x" not in text and "<b>" not in text
    assert not UNESCAPED_LINK.search(markdown) and "**bold**" not in markdown and "**m**" not in markdown
    assert "&lt;script&gt;alert('name')&lt;/script&gt;" in markdown
    assert "\\*\\*bold\\*\\* \\[link\\](javascript:alert(1)) \\| \\`code\\`" in markdown
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_gradio_markdown_shows_sweep_model_and_prompt_names_as_text(tmp_path, tiny_model_dir):
    from claims_sweep import make_scored_sweep

    from engine.models import load_model
    from engine.workspace import Workspace
    from gradio_app.handlers import AppHandlers, AppSettings
    from gradio_app.layout import build_app

    store, sweep_id = make_scored_sweep(tmp_path)
    store.db["sweeps"].update(sweep_id, {"name": HOSTILE, "base_model": "<img src=x onerror=alert(2)>"})
    store.db.execute("update generations set prompt = ? where sweep_id = ?", [HOSTILE, sweep_id])
    store.close()
    with Workspace.open(tmp_path / "ft.db") as workspace:
        handlers = AppHandlers(
            load_model("tiny"), workspace, AppSettings(base_model="<b onmouseover=alert(3)>tiny</b>")
        )
        header = handlers.sweep_filters(str(sweep_id)).info
        caption, _aligned = handlers.aligned_view(str(sweep_id), "0.5", "1", "50", "all")
        with __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore")
            demo = build_app(handlers)
        top = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "header")
    for text in (header, caption, top.value):
        assert "<img" not in text and "<script" not in text and "<b" not in text
        assert not UNESCAPED_LINK.search(text)
    assert "&lt;script&gt;" in header and "&lt;img src=x onerror=alert(2)&gt;" in header
    assert "&lt;script&gt;" in caption and "\\*\\*bold\\*\\*" in caption
    assert "&lt;b onmouseover=alert(3)&gt;tiny&lt;/b&gt;" in top.value


def test_tui_results_show_markup_in_names_and_answers_as_written(tmp_path):
    import asyncio

    from claims_sweep import make_scored_sweep
    from textual.widgets import DataTable

    from engine.workspace import Workspace
    from tui.app import FtHalluApp

    name = "[bold red]boss[/bold red] [link=http://x]y[/link]"
    store, sweep_id = make_scored_sweep(tmp_path)
    store.db["sweeps"].update(sweep_id, {"name": name})
    store.close()

    async def scenario() -> None:
        with Workspace.open(tmp_path / "ft.db") as workspace:
            app = FtHalluApp(workspace, start="results", prefs_path=tmp_path / "prefs.json")
            async with app.run_test(size=(80, 24)) as pilot:
                table = app.screen.query_one("#results-sweeps", DataTable)
                deadline = time.monotonic() + 30
                while table.row_count == 0:
                    assert time.monotonic() < deadline, "the sweep list never filled"
                    await pilot.pause(0.1)
                shown = [str(cell) for cell in table.get_row_at(0)]
                assert name in shown  # the brackets are text, not style

    asyncio.run(scenario())


def test_a_prompt_longer_than_the_context_is_refused_before_sampling(tmp_path, tiny_model_dir):
    config = tmp_path / "s.toml"
    entity = " ".join(f"word{i}" for i in range(3000))  # the tiny model holds 4096 tokens
    config.write_text(SWEEP_HEAD + f'entity_name = "{entity}"\ncompute_metrics = false\n')
    db = tmp_path / "store.db"
    done = run_cli(["--db", str(db), "sweep", "--config", str(config)], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    [line] = error_lines(done.stderr)
    assert "prompt 'entity': " in line and "tokens + max_new_tokens 64 exceed the model's context of 4096 tokens" in line
    tokens = int(line.split("prompt 'entity': ")[1].split(" tokens")[0])
    assert tokens + 64 > 4096
    assert rows_of(db, "select status, error from sweeps") == [("failed", line.removeprefix("ft-hallu: error: "))]
    assert rows_of(db, "select count(*) from generations") == [(0,)]


# ---------------------------------------------------------------- class 1: secrets


def test_an_auth_file_others_can_read_is_warned_about_and_a_private_one_is_not(tmp_path, capsys):
    import socket

    auth = tmp_path / "auth.txt"
    auth.write_text("alice:hunter2\n")
    with socket.socket() as taken:  # a busy port: serve stops before loading any model
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        auth.chmod(0o644)
        assert main(["serve", "--base", "tiny", "--auth-file", str(auth), "--port", port]) == 2
        warning, error = error_lines(capsys.readouterr().err)
        assert warning == (
            f"warning: {auth} holds passwords and can be read by group or others (mode 0644); run: chmod 600 {auth}"
        )
        assert error.startswith(f"ft-hallu: error: --port {port}: cannot listen")
        auth.chmod(0o600)
        assert main(["serve", "--base", "tiny", "--auth-file", str(auth), "--port", port]) == 2
        [error] = error_lines(capsys.readouterr().err)
        assert "hunter2" not in warning + error
