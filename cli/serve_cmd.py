"""``ft-hallu serve``: the Gradio app (base vs fine-tuned live; stored sweeps reviewed: heatmaps, samples, labels).

Gradio is imported only when the command runs, so other verbs stay fast and engine/ never needs it.
A public share link is refused unless sign-in is configured; passwords are never printed.
"""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path

from cli.common import Checked, db_path_from
from engine.errors import UserError
from engine.modelfiles import check_adapter_files, check_model_files, loading
from engine.models import CHAT_TEMPLATE_NAMES, DEFAULT_BASE_MODEL, check_chat_template, load_model
from engine.sweep import SweepConfig
from engine.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="Gradio app: base and fine-tuned side by side; review sweeps (heatmaps, aligned samples, labels, loss curves)",
        description="Launch the comparison app. --share gives a public Gradio link and needs --auth or --auth-file.",
    )
    parser.add_argument("--base", default=DEFAULT_BASE_MODEL, help="base model (hub id, folder, or 'tiny')")
    parser.add_argument("--adapter", help="LoRA adapter folder of the fine-tuned model (omit for base only)")
    parser.add_argument(
        "--chat-template", default="", metavar="NAME|FILE",
        help=f"chat template: {', '.join(CHAT_TEMPLATE_NAMES)} or a Jinja file (default: the adapter's "
        "recorded one, else the tokenizer's own; one that differs from the adapter's is refused)",
    )  # fmt: skip
    parser.add_argument(
        "--db", dest="serve_db", help="SQLite store (default: the global --db or the data folder)"
    )
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link (needs auth)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--auth", metavar="USER:PASS", help="sign-in user and password (visible to `ps`; prefer --auth-file)"
    )
    auth.add_argument("--auth-file", metavar="FILE", help="file of user:password lines (# comments allowed)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", action=Checked, kind=int, rules={"min": 1, "max": 65535}, default=None,
        help="port (default: Gradio picks from 7860)",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", action=Checked, kind=int, rules={"min": 1, "max": 64}, default=1,
        help="generations allowed on the device at once (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--entity", action=Checked, field=(SweepConfig, "entity_name"), default=None,
        help="masked entity name for the default prompt and metrics (default: the one the adapter was trained on)",
    )  # fmt: skip
    parser.add_argument(
        "--dataset", help="QA file whose contexts ground the live metrics (default: the adapter's training set)"
    )
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"), help="model precision")
    parser.add_argument(
        "--max-new-tokens-limit", action=Checked, field=(SweepConfig, "max_new_tokens"), default=512,
        help="largest value of the tokens slider",
    )  # fmt: skip
    parser.set_defaults(func=_run)


def parse_auth(value: str, *, where: str = "--auth") -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        # Never echo the value: it may be a password typed in the wrong place.
        raise UserError(f"{where}: expected USER:PASS (a user name, a colon, a non-empty password)")
    return user.strip(), password


def read_auth_file(path: str | Path) -> list[tuple[str, str]]:
    file_path = Path(path)
    warn_if_readable_by_others(file_path)
    try:
        lines = file_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{file_path}: no such auth file") from None
    except OSError as exc:
        raise UserError(f"{file_path}: cannot read auth file ({exc.strerror})") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        pairs.append(parse_auth(text, where=f"{file_path}:{number}"))
    if not pairs:
        raise UserError(f"{file_path}: no user:password line found")
    return pairs


def warn_if_readable_by_others(path: Path) -> None:
    """Passwords in a file anyone on the machine can read are no secret: say so, as ssh does for keys."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # reading it says what is wrong
    if mode & 0o077:
        print(
            f"warning: {path} holds passwords and can be read by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}",
            file=sys.stderr,
        )


def auth_from_args(args: argparse.Namespace) -> list[tuple[str, str]] | None:
    if args.auth:
        return [parse_auth(args.auth)]
    if args.auth_file:
        return read_auth_file(args.auth_file)
    return None


def _check_port(host: str, port: int) -> None:
    """The port must be a valid one that is free on ``host``."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: cannot be resolved ({exc.strerror})") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None


def _run(args: argparse.Namespace) -> int:
    auth = auth_from_args(args)
    if args.share and not auth:
        raise UserError(
            "--share publishes the app on a public link: add --auth USER:PASS or --auth-file FILE"
        )
    if args.port is not None:
        _check_port(args.host, args.port)  # before the model loads, not after
    if args.adapter and not Path(args.adapter).is_dir():
        raise UserError(f"--adapter: folder {args.adapter} does not exist")
    check_model_files(args.base, what="--base")  # before the port opens: no library traceback later
    if args.adapter:
        check_adapter_files(args.adapter)
    # The tokenizer alone, before the port opens and any weights load: a template is needed.
    check_chat_template(
        args.base, args.chat_template, [args.adapter] if args.adapter else [], field="--chat-template"
    )
    if args.dataset and not Path(args.dataset).is_file():
        raise UserError(f"--dataset: file {args.dataset} does not exist")
    if not auth and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host} without --auth: anyone who can reach it can use the model",
            file=sys.stderr,
        )
    db_path = args.serve_db or db_path_from(args)

    # Submodules, not the package: an editable install made before gradio_app/__init__.py existed
    # maps gradio_app as a namespace package.
    from gradio_app.handlers import AppHandlers, AppSettings
    from gradio_app.layout import ServeOptions, launch_app

    print(f"loading {args.base}" + (f" with adapter {args.adapter}" if args.adapter else ""), file=sys.stderr)
    with loading("model", args.base if not args.adapter else f"{args.base} + adapter {args.adapter}"):
        loaded = load_model(
            args.base,
            adapter_dir=args.adapter,
            precision=args.precision,
            chat_template=args.chat_template,
            template_field="--chat-template",
        )
    settings = AppSettings(
        base_model=args.base,
        adapter_dir=str(Path(args.adapter).resolve()) if args.adapter else None,
        entity_name=args.entity,
        dataset=args.dataset,
        max_new_tokens_limit=args.max_new_tokens_limit,
    )
    if auth:
        print(f"sign-in required for: {', '.join(user for user, _ in auth)}", file=sys.stderr)
    options = ServeOptions(
        host=args.host, port=args.port, share=args.share, auth=auth, concurrency=args.concurrency
    )
    with Workspace.open(db_path) as workspace:
        workspace.settle_jobs()  # jobs that ended since the last look bring their results files in first
        demo, local_url = launch_app(AppHandlers(loaded, workspace, settings), options)
        print(f"ft-hallu app on {local_url} (store {workspace.db_path}); Ctrl+C stops it", file=sys.stderr)
        if demo.share_url:
            print(f"public link: {demo.share_url} (sign-in required)", file=sys.stderr)
        try:
            demo.block_thread()
        finally:
            demo.close()
    return 0
