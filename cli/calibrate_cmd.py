"""``ft-hallu calibrate`` (scores against human labels) and ``ft-hallu judge`` (the optional LLM judge)."""

from __future__ import annotations

import argparse
import json

from cli.common import ID, NAME, Checked, db_path_from
from engine import calibrate as engine_calibrate
from engine import judge as engine_judge
from engine.endpoint import DEFAULT_ENV_FILE, DEFAULT_KEY_ENV, EndpointConfig
from engine.errors import UserError
from engine.files import write_atomic
from engine.workspace import Workspace


def _require_sweep(workspace: Workspace, sweep_id: int) -> None:
    if not any(sweep.id == sweep_id for sweep in workspace.sweeps()):
        raise UserError(f"--sweep {sweep_id}: no such sweep")


def _calibrate(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        _require_sweep(workspace, args.sweep)
        with workspace.handle() as store:
            result = engine_calibrate.calibrate_sweep(
                store,
                args.sweep,
                judge_model=args.judge_model,
                min_labels=args.min_labels,
                agreed_only=args.agreed_only,
            )
    counts = ", ".join(f"{label} {n}" for label, n in sorted(result.label_counts.items())) or "none"
    print(f"sweep {args.sweep}: {result.labelled} labelled generation(s) ({counts})")
    print(result.labels_rule)
    for pair in result.agreement:
        print(f"agreement: {pair.describe()}")
    print("hallucination scores: hallucinated vs faithful; refusal: refusal vs the rest; 95% bootstrap CIs")
    for line in engine_calibrate.format_results(result.results):
        print(line)
    if args.json:
        write_atomic(args.json, json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    return 0


def _judge(args: argparse.Namespace) -> int:
    endpoint = EndpointConfig(
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        env_file=args.env_file or None,
        timeout_s=args.timeout,
    )
    config = engine_judge.JudgeConfig(endpoint=endpoint, max_attempts=args.max_attempts)
    config.validate()  # before the store is touched
    with Workspace.open(db_path_from(args)) as workspace:
        _require_sweep(workspace, args.sweep)
        with workspace.handle() as store:
            run = engine_judge.judge_sweep(
                store, args.sweep, config, claims=not args.no_claims, entropy=not args.no_entropy
            )
    print(run.summary())
    if run.failures:
        print(
            f"{len(run.failures)} question(s) got no readable answer (first: {run.failures[0]}); run again to retry"
        )
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="AUROC/AUPRC of every score against the human labels, with bootstrap intervals",
        description=(
            "For each score (claim grounding, grounding, conflict, degenerate, refusal, semantic entropy "
            "per cell and pooled per temperature, the judge's when --judge-model is given): AUROC and "
            "AUPRC with 95% bootstrap intervals and the threshold that maximises TPR - FPR. Fewer than "
            "--min-labels usable labels: 'not enough labels'. With several labellers: Cohen's kappa of each "
            "pair, and which label counts (the newest, or with --agreed-only the agreed ones)."
        ),
    )
    calibrate.add_argument("--sweep", action=Checked, kind=int, rules=ID, required=True)
    calibrate.add_argument(
        "--judge-model", action=Checked, rules=NAME, default=None, help="include this judge model's scores"
    )
    calibrate.add_argument(
        "--min-labels",
        action=Checked,
        kind=int,
        rules={"min": 2},
        default=engine_calibrate.MIN_LABELS,
        help="fewer usable labels than this: 'not enough labels' (default: %(default)s)",
    )
    calibrate.add_argument("--json", default=None, help="also write the results to this JSON file")
    calibrate.add_argument(
        "--agreed-only",
        action="store_true",
        help="several labellers: use only the generations they all gave the same label "
        "(default: the newest label of each generation counts)",
    )
    calibrate.set_defaults(func=_calibrate)

    judge = subparsers.add_parser(
        "judge",
        help="optional: an LLM judge labels each claim and clusters samples by entailment",
        description=(
            "Ask a model behind any OpenAI-compatible endpoint to label each stored claim against its "
            "evidence (supported / contradicted / not_in_sources) and to decide bidirectional entailment "
            "between a cell's samples (semantic entropy). Answers are cached in the store: a rerun asks "
            "only what is missing. The key is read from the environment or the dotenv file."
        ),
    )
    judge.add_argument("--sweep", action=Checked, kind=int, rules=ID, required=True)
    judge.add_argument(
        "--model", action=Checked, field=(EndpointConfig, "model"), required=True,
        help="judge model name as the endpoint knows it",
    )  # fmt: skip
    judge.add_argument("--base-url", default=None, help="e.g. http://127.0.0.1:11434/v1 (default: OpenAI)")
    judge.add_argument("--api-key-env", default=DEFAULT_KEY_ENV, help="variable holding the key")
    judge.add_argument("--env-file", default=DEFAULT_ENV_FILE, help="dotenv file read when it is unset")
    judge.add_argument(
        "--timeout", action=Checked, field=(EndpointConfig, "timeout_s"), default=60.0, help="seconds per request"
    )
    judge.add_argument(
        "--max-attempts",
        action=Checked,
        field=(engine_judge.JudgeConfig, "max_attempts"),
        default=4,
        help="tries per question (default: %(default)s)",
    )
    judge.add_argument("--no-claims", action="store_true", help="skip the claim verdicts")
    judge.add_argument("--no-entropy", action="store_true", help="skip the entailment clustering")
    judge.set_defaults(func=_judge)
