"""``ft-hallu generate``: QA items from a filing through an OpenAI-compatible endpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli.common import NAME, Checked, db_path_from
from engine import generate as gen
from engine.configfile import check_field
from engine.endpoint import check_base_url
from engine.errors import UserError, not_a_file
from engine.workspace import Workspace


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate a QA dataset from a 10-K/10-Q (EDGAR or a local file) with an LLM endpoint",
        description=(
            "Generate question/answer/context items from a filing with financial-datasets' prompt and tool "
            "schema, over any OpenAI-compatible endpoint. Re-run the same command to resume."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--filing", help="local filing: .htm/.html (10-K items are found), .txt or .pdf")
    source.add_argument("--texts", help="JSON/JSONL of strings or {'text': ...} objects, or a .txt file")
    source.add_argument("--ticker", help="fetch the filing from EDGAR (needs --year and --sec-identity)")
    parser.add_argument("--year", action=Checked, kind=int, rules={"min": 1993, "max": 2100}, help="filing year for --ticker")
    parser.add_argument("--form", choices=("10-K", "10-Q"), default="10-K")
    parser.add_argument("--quarter", type=int, choices=(1, 2, 3, 4), help="quarter for a 10-Q")
    parser.add_argument(
        "--item", action="append", default=[], dest="items", help="filing item, e.g. 'Item 7'"
    )
    parser.add_argument(
        "--sec-identity", help=f"'Your Name you@example.com' sent to EDGAR (or set ${gen.SEC_IDENTITY_ENV})"
    )
    parser.add_argument(
        "--name", action=Checked, rules=NAME, help="dataset name (default: the file stem or TICKER-YEAR)"
    )
    parser.add_argument("--out", help="output folder (default: <data>/generated/<name>); re-use it to resume")
    parser.add_argument(
        "--model",
        action=Checked,
        field=(gen.EndpointConfig, "model"),
        default=gen.DEFAULT_MODEL,
        help="model name sent as is (default: %(default)s)",
    )
    parser.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1")
    parser.add_argument(
        "--env-file", default=gen.DEFAULT_ENV_FILE, help="dotenv file with the key (%(default)s)"
    )
    parser.add_argument("--api-key-env", default=gen.DEFAULT_KEY_ENV, help="key variable name (%(default)s)")
    config = gen.GenerateConfig
    for flag, name, text in (
        ("--workers", "workers", "concurrent requests (default: %(default)s)"),
        ("--questions-per-chunk", "questions_per_chunk", "questions asked per chunk (default: %(default)s)"),
        ("--max-items", "max_items", "keep at most this many items in the merged dataset"),
        ("--chunk-chars", "chunk_chars", "characters per chunk (default: %(default)s)"),
        ("--chunk-overlap", "chunk_overlap_chars", "characters shared by neighbouring chunks (default: %(default)s)"),
        ("--max-attempts", "max_attempts", "tries per chunk on 429/5xx/timeouts (default: %(default)s)"),
    ):
        default = getattr(config(output_dir=""), name)
        parser.add_argument(flag, dest=name, action=Checked, field=(config, name), default=default, help=text)
    parser.add_argument(
        "--timeout",
        action=Checked,
        field=(gen.EndpointConfig, "timeout_s"),
        default=120.0,
        help="seconds per request (default: %(default)s)",
    )
    parser.add_argument("--system-prompt-file", help="replace financial-datasets' default system prompt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _source(args: argparse.Namespace) -> gen.QaSource:
    if args.ticker and args.year is None:
        raise UserError("--ticker needs --year")
    return gen.QaSource(
        filing=args.filing or "",
        texts=args.texts or "",
        ticker=args.ticker or "",
        year=args.year,
        form=args.form,
        quarter=args.quarter,
        sec_identity=args.sec_identity,
        items=tuple(args.items),
    )


class _ProgressBar:
    def __init__(self, enabled: bool):
        self._enabled = enabled
        self._bar = None

    def __call__(self, event: gen.ProgressEvent) -> None:
        if not self._enabled:
            return
        from tqdm import tqdm

        if event.kind == "start":
            self._bar = tqdm(
                total=event.chunks_total,
                initial=event.chunks_done,
                unit="chunk",
                desc="generate",
                file=sys.stderr,
            )
        elif self._bar is None:
            return
        if event.kind == "chunk_done":
            self._bar.update(1)
        if event.kind in ("retry", "chunk_failed"):
            self._bar.write(f"{event.chunk_id}: {event.message}", file=sys.stderr)
        self._bar.set_postfix(items=event.items_total)
        if event.kind == "finished":
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run(args: argparse.Namespace) -> int:
    system_prompt = None
    if args.system_prompt_file:
        prompt_path = Path(args.system_prompt_file)
        if not prompt_path.is_file():
            raise not_a_file(prompt_path)
        system_prompt = prompt_path.read_text(encoding="utf-8")
    endpoint = gen.EndpointConfig(
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        env_file=args.env_file,
        timeout_s=args.timeout,
    )
    # Options checked under their own names, before a key is read or a file fetched.
    check_field(gen.EndpointConfig, "timeout_s", args.timeout, source="command line", label="--timeout")
    if args.base_url is not None:
        check_base_url(args.base_url, source="command line", label="--base-url")
    source = _source(args)
    name = args.name or source.default_name
    config = gen.GenerateConfig(
        output_dir=str(Path(args.out) if args.out else gen.output_dir_for(name)),
        name=name,
        endpoint=endpoint,
        questions_per_chunk=args.questions_per_chunk,
        max_items=args.max_items,
        chunk_chars=args.chunk_chars,
        chunk_overlap_chars=args.chunk_overlap_chars,
        workers=args.workers,
        max_attempts=args.max_attempts,
        system_prompt=system_prompt,
    )
    config.validate()
    gen.resolve_api_key(endpoint)  # fail on a missing key before reading or fetching anything
    texts = source.read()  # a bad filing or texts file is refused here, before the store file exists
    bar = _ProgressBar(enabled=not args.no_progress)
    try:
        with Workspace.open(db_path_from(args)) as workspace:
            result = workspace.generate_qa(config, texts, on_progress=bar)
    finally:
        bar.close()
    print(f"items:    {result.items} from {result.chunks_total} chunks ({result.chunks_sent} sent this run)")
    if result.dropped_items:
        print(f"dropped:  {result.dropped_items} malformed items")
    print(f"dataset:  {result.dataset_path} (store id {result.dataset_id})")
    print(f"raw:      {result.raw_items_path}")
    return 0
