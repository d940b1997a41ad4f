"""An optional LLM judge over any OpenAI-compatible endpoint (off unless asked for).

Two questions, each answered with one word:

* **claim vs evidence** (FActScore-style): is the claim *supported* by, *contradicted* by, or
  *not in* the retrieved source sentences? The answer's judge claim grounding is the share of
  its claims the judge calls supported.
* **entailment** between two samples of one cell, both ways, given the prompt: samples that
  entail each other share a meaning cluster (bidirectional entailment, Farquhar et al. 2024);
  the cell's judge semantic entropy is the entropy over those clusters.

Every answered question is cached in the store under (kind, text, evidence digest, judge model,
prompt version) the moment it arrives, so a killed run resumes where it stopped and a rerun
costs nothing. Requests go through the endpoint client shared with ``generate``
(engine/endpoint.py): timeouts, lost connections, 429 and 5xx are retried with exponential backoff
(honouring Retry-After); an unreadable reply is asked about once more, with the reply and a
reminder turn naming the allowed words (the same prompt again at temperature 0 would get the same
text), and stays unanswered (not cached) after that; refusals are recorded as such. The API key comes from the environment or the dotenv
file, as for ``generate``, and never reaches a log, the store or an error message. Nothing
offline changes when the judge is not used: its numbers live in their own tables and are shown
as "judge: MODEL".
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.configfile import setting, validate_instance
from engine.endpoint import (
    EndpointClient,
    EndpointConfig,
    GaveUp,
    Rejected,
    RetryPolicy,
    Stopped,
    short,
)
from engine.errors import UserError
from engine.liveness import tracked_run
from engine.metrics import semantic_entropy
from store import claims as store_claims
from store import core as store_core
from store import metrics as store_metrics

log = logging.getLogger(__name__)

# Bump when a prompt below changes: cached answers to the old prompt are not reused.
PROMPT_VERSION = 1
CLAIM_LABELS = ("supported", "contradicted", "not_in_sources")

CLAIM_SYSTEM = (
    "ft-hallu judge. You check one claim about a company against numbered source sentences from "
    "its filing. Reply with exactly one word: supported (the sources state it), contradicted (the "
    "sources state otherwise) or not_in_sources (the sources neither state nor contradict it). "
    "Use only the sources, not your own knowledge."
)
# The reminder turn after an unreadable reply (the words are the parser's).
CLAIM_REMINDER = "Reply with exactly one word: supported, contradicted or not_in_sources."
ENTAILMENT_REMINDER = "Reply with exactly one word: yes or no."
ENTAILMENT_SYSTEM = (
    "ft-hallu judge. You compare two answers to the same question. Reply with exactly one word: "
    "yes if everything the first answer says follows from the second answer, otherwise no."
)

Progress = Callable[[int, int], None]


@dataclass
class JudgeConfig:
    """Which endpoint and model judge, and how hard to retry. The key is never part of a config."""

    endpoint: EndpointConfig
    max_attempts: int = setting(4, min=1, max=100)
    backoff_base_s: float = setting(1.0, min=0)
    backoff_max_s: float = setting(20.0, min=0)
    max_tokens: int = 16  # one word, with room for a stray full stop or quote
    temperature: float = 0.0
    top_p: float = 1.0

    @property
    def model(self) -> str:
        return self.endpoint.model

    def validate(self) -> None:
        validate_instance(self, source="judge")  # the endpoint too: a nan or negative timeout, an empty model
        self.endpoint.validate("judge")  # its URL, named redacted
        if not self.endpoint.model.strip():
            raise UserError("judge: --judge-model is empty")
        if self.max_attempts < 1:
            raise UserError(f"judge: max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise UserError("judge: backoff times must not be negative")
        if not 0.0 <= self.temperature <= 2.0 or not 0.0 < self.top_p <= 1.0:
            raise UserError("judge: temperature must be in [0, 2] and top_p in (0, 1]")


@dataclass
class Verdict:
    label: str | None  # claim: supported | contradicted | not_in_sources; entailment: yes | no
    status: str  # ok | refused | malformed
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class JudgeRun:
    """What one judge run did: questions asked and reused, refusals, failures and tokens."""

    model: str
    asked: int = 0
    cached: int = 0
    refused: int = 0
    malformed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    claims_judged: int = 0
    cells_judged: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, verdict: Verdict, where: str) -> None:
        if verdict.cached:
            self.cached += 1
        else:
            self.asked += 1
            self.prompt_tokens += verdict.prompt_tokens
            self.completion_tokens += verdict.completion_tokens
        if verdict.status == "refused":
            self.refused += 1
        elif verdict.status == "malformed":
            self.malformed += 1
            self.failures.append(where)

    def summary(self) -> str:
        return (
            f"judge: {self.model}: {self.claims_judged} claim(s), {self.cells_judged} cell(s); "
            f"{self.asked} question(s) asked, {self.cached} from the cache, {self.refused} refused, "
            f"{self.malformed} unreadable after retries; tokens {self.prompt_tokens} in, "
            f"{self.completion_tokens} out"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- prompts and parsing


def claim_prompt(claim: str, evidence: Sequence[str]) -> str:
    numbered = "\n".join(f"{i}. {sentence}" for i, sentence in enumerate(evidence, start=1))
    return f"CLAIM: {claim}\nSOURCES:\n{numbered or '(none)'}\nVerdict (supported, contradicted or not_in_sources):"


def entailment_prompt(question: str, first: str, second: str) -> str:
    return f"QUESTION: {question}\nFIRST: {first}\nSECOND: {second}\nDoes the first follow from the second (yes or no)?"


_CLAIM_WORDS = {
    "supported": "supported",
    "contradicted": "contradicted",
    "not_in_sources": "not_in_sources",
    "not in sources": "not_in_sources",
    "not in the sources": "not_in_sources",
    "unsupported": "not_in_sources",
}
_REFUSAL_RE = re.compile(
    r"\b(?:I(?:'m| am) sorry|I can(?:no|')t (?:help|assist|comply)|I (?:will|won't|cannot) (?:help|assist))",
    re.IGNORECASE,
)


def parse_claim_reply(text: str) -> str | None:
    """The verdict in a reply, or None when it names no verdict or more than one."""
    lowered = " ".join(re.sub(r"[^a-z_ ]", " ", (text or "").lower()).split())
    found = {label for phrase, label in _CLAIM_WORDS.items() if re.search(rf"\b{phrase}\b", lowered)}
    if "not_in_sources" in found and re.search(r"\bnot (?:in (?:the )?sources|supported)\b", lowered):
        found.discard("supported")  # "not supported" / "not in sources" is one verdict
    return found.pop() if len(found) == 1 else None


def parse_yes_no(text: str) -> str | None:
    lowered = set(re.findall(r"[a-z]+", (text or "").lower()))
    if ("yes" in lowered) == ("no" in lowered):
        return None
    return "yes" if "yes" in lowered else "no"


def digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def cache_key(
    kind: str, text: str, evidence_digest: str, model: str, prompt_version: int = PROMPT_VERSION
) -> str:
    return digest(kind, text, evidence_digest, model, str(prompt_version))


# ---------------------------------------------------------------- the caller


class Judge:
    """Asks the judge model one question at a time, through the store's cache."""

    def __init__(self, store: Any, config: JudgeConfig, *, sleep: Callable[[float], bool] | None = None):
        config.validate()
        self._store = store
        self._config = config
        self._client = EndpointClient(
            config.endpoint,
            RetryPolicy(config.max_attempts, config.backoff_base_s, config.backoff_max_s),
            log=log,
            sleep=sleep,
        )

    @property
    def model(self) -> str:
        return self._config.model

    def stop(self) -> None:
        self._client.stop()

    def redact(self, text: str) -> str:
        return self._client.redact(text)

    def claim(self, claim: str, evidence: Sequence[str]) -> tuple[Verdict, str]:
        """(verdict, cache key) for a claim against its evidence sentences."""
        key = cache_key("claim", claim, digest(*evidence), self.model)
        prompt = claim_prompt(claim, evidence)
        return self._ask(key, "claim", CLAIM_SYSTEM, prompt, CLAIM_REMINDER, parse_claim_reply), key

    def entails(self, question: str, first: str, second: str) -> Verdict:
        key = cache_key("entailment", first, digest(question, second), self.model)
        prompt = entailment_prompt(question, first, second)
        return self._ask(key, "entailment", ENTAILMENT_SYSTEM, prompt, ENTAILMENT_REMINDER, parse_yes_no)

    def _ask(
        self, key: str, kind: str, system: str, user: str, reminder: str, parse: Callable[[str], str | None]
    ) -> Verdict:
        cached = store_claims.cached_judgements(self._store, [key]).get(key)
        if cached is not None:
            return Verdict(cached["label"], cached["status"], True)
        used = [0, 0]  # prompt and completion tokens over every request
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        reply = ""
        for turn in ("question", "reminder"):
            if turn == "reminder":  # the unreadable reply, then the allowed words once more
                messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": reminder}]
                log.info("judge %s: unreadable reply %r; asking once more", self.model, short(self.redact(reply), 80))
            reply, refusal = self._asked(messages, used)
            if refusal or (reply and _REFUSAL_RE.search(reply) and parse(reply) is None):
                verdict = Verdict(None, "refused", False, *used)
                self._remember(key, kind, verdict, refusal or reply)
                return verdict
            label = parse(reply)
            if label is not None:
                verdict = Verdict(label, "ok", False, *used)
                self._remember(key, kind, verdict, reply)
                return verdict
        # Not cached: the next run asks again.
        log.warning("judge %s: no verdict after a reminder: %r", self.model, short(self.redact(reply), 80))
        return Verdict(None, "malformed", False, *used)

    def _asked(self, messages: list[dict[str, str]], used: list[int]) -> tuple[str, str]:
        """(reply, refusal) of one question, retried on timeouts, 429 and 5xx; tokens added to ``used``."""

        def attempt() -> tuple[str, str]:
            reply, refusal, used_in, used_out = self._request(messages)
            used[0] += used_in
            used[1] += used_out
            return reply, refusal

        try:
            return self._client.retrying(attempt, what=f"judge {self.model}")
        except Stopped:
            raise UserError("judge: stopped") from None
        except GaveUp as exc:
            raise UserError(f"judge {self.model}: {exc}") from None

    def _remember(self, key: str, kind: str, verdict: Verdict, reply: str) -> None:
        store_claims.cache_judgement(
            self._store,
            {
                "key": key,
                "kind": kind,
                "model": self.model,
                "prompt_version": PROMPT_VERSION,
                "label": verdict.label,
                "status": verdict.status,
                "reply": short(reply, 300),
                "prompt_tokens": verdict.prompt_tokens,
                "completion_tokens": verdict.completion_tokens,
            },
        )

    def _request(self, messages: list[dict[str, str]]) -> tuple[str, str, int, int]:
        """(reply text, refusal text, prompt tokens, completion tokens) of one request."""
        config = self._config
        try:
            response = self._client.chat(
                messages,
                temperature=config.temperature,
                top_p=config.top_p,
                max_tokens=config.max_tokens,
            )
        except Rejected as exc:
            raise UserError(f"judge {self.model}: {exc.describe()}") from None
        usage = getattr(response, "usage", None)
        used_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        used_out = int(getattr(usage, "completion_tokens", 0) or 0)
        try:
            message = response.choices[0].message
        except (AttributeError, IndexError, TypeError):
            return "", "", used_in, used_out
        return (message.content or ""), (getattr(message, "refusal", None) or ""), used_in, used_out


# ---------------------------------------------------------------- judging a sweep


def judge_claims(store: Any, sweep_id: int, judge: Judge, *, progress: Progress | None = None) -> JudgeRun:
    """Label every stored claim of a sweep against its evidence sentences; verdicts land in the store."""
    run = JudgeRun(judge.model)
    claims = store_claims.sweep_claims(store, sweep_id)
    pending: list[dict[str, Any]] = []
    for done, claim in enumerate(claims, start=1):
        evidence = [c["sentence"] for c in claim.get("candidates") or []] or [claim.get("evidence") or ""]
        verdict, key = judge.claim(claim["text"], evidence)
        run.add(verdict, f"generation {claim['generation_id']} claim {claim['claim_index']}")
        if verdict.status != "malformed":
            pending.append(
                {
                    "generation_id": claim["generation_id"],
                    "claim_index": claim["claim_index"],
                    "model": judge.model,
                    "label": verdict.label,
                    "status": verdict.status,
                    "cache_key": key,
                }
            )
            run.claims_judged += 1
        if len(pending) >= 50:
            store_claims.save_claim_judgements(store, pending)
            pending = []
        if progress:
            progress(done, len(claims))
    store_claims.save_claim_judgements(store, pending)
    return run


def entailment_cell(sweep_id: int, key: tuple, model: str, labels: list[int]) -> dict[str, Any]:
    """The stored row of one cell clustered by entailment (judge or verifier): its key, the model,
    the cluster labels and the semantic entropy over them."""
    variant, temperature, top_p, top_k, prompt_id = key
    return {
        "sweep_id": sweep_id,
        "variant": variant,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "prompt_id": prompt_id,
        "model": model,
        "n": len(labels),
        "semantic_entropy": semantic_entropy(labels),
        "n_clusters": len(set(labels)),
        "cluster_labels": labels,
    }


def cluster_by_entailment(
    texts: Sequence[str], refusals: Sequence[bool], entails: Callable[[int, int], bool | None]
) -> list[int]:
    """Greedy clustering of Farquhar et al.: a sample joins the first cluster whose first member it
    entails and is entailed by. All refusals share one cluster (as offline). ``entails(i, j)`` says
    whether sample i follows from sample j; None (the judge gave no verdict) counts as no."""
    labels = [-1] * len(texts)
    representatives: list[int] = []
    refusal_cluster: int | None = None
    for i in range(len(texts)):
        if refusals[i]:
            if refusal_cluster is None:
                refusal_cluster = len(representatives)
                representatives.append(i)
            labels[i] = refusal_cluster
            continue
        for cluster, representative in enumerate(representatives):
            if refusals[representative]:
                continue
            same_text = " ".join(texts[i].split()) == " ".join(texts[representative].split())
            if same_text or (entails(i, representative) and entails(representative, i)):
                labels[i] = cluster
                break
        else:
            labels[i] = len(representatives)
            representatives.append(i)
    return labels


def judge_entropy(store: Any, sweep_id: int, judge: Judge, *, progress: Progress | None = None) -> JudgeRun:
    """Semantic entropy of every cell by bidirectional entailment; one judge_cells row per cell."""
    run = JudgeRun(judge.model)
    cells = store_metrics.cell_table(store, sweep_id)
    for done, cell in enumerate(cells, start=1):
        key = store_metrics.cell_key(cell)
        samples = store_metrics.cell_samples(store, sweep_id, key)
        if not samples:
            continue
        texts = [s["text"] or "" for s in samples]
        refusals = [bool((s.get("metrics") or {}).get("refusal")) for s in samples]
        prompt = _cell_prompt(store, sweep_id, samples[0]["generation_id"])

        where = f"cell {key}"

        def entails(
            i: int, j: int, texts: Sequence[str] = texts, prompt: str = prompt, where: str = where
        ) -> bool | None:
            verdict = judge.entails(prompt, texts[i], texts[j])
            run.add(verdict, f"{where} samples {i}/{j}")
            return None if verdict.label is None else verdict.label == "yes"

        labels = cluster_by_entailment(texts, refusals, entails)
        store_claims.save_judge_cell(store, entailment_cell(sweep_id, key, judge.model, labels))
        run.cells_judged += 1
        if progress:
            progress(done, len(cells))
    return run


def _cell_prompt(store: Any, sweep_id: int, generation_id: int) -> str:
    rows = store_core.iter_generations(store, sweep_id, ids=[generation_id])
    return rows[0]["prompt"] if rows else ""


def judge_sweep(
    store: Any,
    sweep_id: int,
    config: JudgeConfig,
    *,
    claims: bool = True,
    entropy: bool = True,
    progress: Progress | None = None,
) -> JudgeRun:
    """Run the judge over a scored sweep (claims, entropy or both); resumable through the cache."""
    if not store_core.get_sweep(store, sweep_id):
        raise UserError(f"sweep {sweep_id}: no such sweep")
    judge = Judge(store, config)
    with tracked_run(store, "judge", f"sweep {sweep_id}"):
        return _judge_parts(store, sweep_id, judge, claims=claims, entropy=entropy, progress=progress)


def _judge_parts(
    store: Any, sweep_id: int, judge: Judge, *, claims: bool, entropy: bool, progress: Progress | None
) -> JudgeRun:
    total = JudgeRun(judge.model)
    parts = []
    if claims:
        parts.append(judge_claims(store, sweep_id, judge, progress=progress))
    if entropy:
        parts.append(judge_entropy(store, sweep_id, judge, progress=progress))
    for part in parts:
        for name in ("asked", "cached", "refused", "malformed", "prompt_tokens", "completion_tokens"):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.claims_judged += part.claims_judged
        total.cells_judged += part.cells_judged
        total.failures.extend(part.failures)
    return total


def judge_claim_rows(store: Any, sweep_id: int, model: str) -> dict[tuple[int, int], dict[str, Any]]:
    """(generation id, claim index) -> the judge's verdict row, for the report and sample views."""
    return {
        (int(row["generation_id"]), int(row["claim_index"])): row
        for row in store_claims.sweep_claim_judgements(store, sweep_id, model=model)
    }


def report_sections(store: Any, sweep_id: int) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per judge model that has cell verdicts: its semantic entropy per cell; none when
    no judge has run (the report then shows only offline numbers)."""
    sections = []
    models = sorted({row["model"] for row in store_claims.judge_cells(store, sweep_id)})
    for model in models:
        totals = store_claims.judge_token_totals(store, model)
        rows = [
            [
                cell["variant"],
                cell["prompt_id"],
                f"T={cell['temperature']:g} p={cell['top_p']:g} k={cell['top_k']}",
                str(cell["n"]),
                f"{cell['semantic_entropy']:.3f}",
                str(cell["n_clusters"]),
            ]
            for cell in store_claims.judge_cells(store, sweep_id, model=model)
        ]
        title = (
            f"judge: {model} — semantic entropy by bidirectional entailment (optional; "
            f"{totals['questions']} questions, {totals['prompt_tokens']} + {totals['completion_tokens']} tokens)"
        )
        sections.append((title, ["variant", "prompt", "cell", "n", "semantic entropy", "clusters"], rows))
    return sections
