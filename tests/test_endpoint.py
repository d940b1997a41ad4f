"""The endpoint client generate and the judge share (engine/endpoint.py), against the project's real
OpenAI-compatible test server: backoff and Retry-After, giving up, stopping, refusals, redaction."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import Behavior, running_stub  # noqa: E402

from engine.endpoint import (  # noqa: E402
    EndpointClient,
    EndpointConfig,
    GaveUp,
    Rejected,
    RetryPolicy,
    Stopped,
)

SECRET = "sk-ftHALLU-endpoint-secret-51f0"
# The test server answers a system turn starting "ft-hallu judge" with one verdict word.
MESSAGES = [
    {"role": "system", "content": "ft-hallu judge. Reply yes or no."},
    {"role": "user", "content": "QUESTION: q\nFIRST: a\nSECOND: a\nDoes the first follow from the second?"},
]


class Waits:
    """The client's sleep: records each wait; ``stop_after`` waits it reports a stop."""

    def __init__(self, stop_after: int | None = None):
        self.seconds: list[float] = []
        self.stop_after = stop_after

    def __call__(self, seconds: float) -> bool:
        self.seconds.append(seconds)
        return self.stop_after is not None and len(self.seconds) >= self.stop_after


def client(stub, policy: RetryPolicy, waits: Waits, *, key: str = SECRET) -> EndpointClient:
    endpoint = EndpointConfig(model="judge-1", base_url=stub.base_url, env_file=None, timeout_s=10)
    return EndpointClient(endpoint, policy, api_key=key, sleep=waits)


def ask(endpoint: EndpointClient, **kw):
    return endpoint.retrying(lambda: endpoint.chat(MESSAGES, temperature=0.0, top_p=1.0, max_tokens=4), **kw)


def test_retry_after_is_honoured_over_the_backoff() -> None:
    waits = Waits()
    with running_stub(Behavior(script=["429", "429"], retry_after="0.25")) as stub:
        reply = ask(client(stub, RetryPolicy(3, backoff_base_s=30.0, backoff_max_s=60.0), waits), what="t")
        assert [r.outcome for r in stub.requests] == ["429", "429", "ok"]
    assert reply.choices[0].message.content and waits.seconds == [0.25, 0.25]


def test_backoff_doubles_with_jitter_up_to_its_cap_then_gives_up(caplog) -> None:
    waits, retries = Waits(), []
    caplog.set_level(logging.WARNING)
    with running_stub(Behavior(script=["500", "503", "502", "500"])) as stub:
        endpoint = client(stub, RetryPolicy(4, backoff_base_s=1.0, backoff_max_s=1.5), waits)
        with pytest.raises(GaveUp) as gave_up:
            ask(endpoint, what="judge judge-1", on_retry=lambda n, message: retries.append((n, message)))
        assert len(stub.requests) == 4
    assert gave_up.value.attempts == 4 and "HTTP 500" in gave_up.value.last_error
    first, second, third = waits.seconds
    assert 0.5 <= first <= 1.0 and 0.75 <= second <= 1.5 and 0.75 <= third <= 1.5
    assert [n for n, _ in retries] == [1, 2, 3] and "HTTP 503" in retries[1][1]
    assert "judge judge-1: attempt 1 failed" in caplog.text


def test_a_stop_ends_the_wait_and_no_further_request_is_sent() -> None:
    with running_stub(Behavior(script=["500", "500"])) as stub:
        endpoint = client(stub, RetryPolicy(5, 0.01, 0.02), Waits(stop_after=1))
        with pytest.raises(Stopped):
            ask(endpoint, what="t")
        assert len(stub.requests) == 1
        stopped = client(stub, RetryPolicy(5, 0.01, 0.02), Waits())
        stopped.stop()
        with pytest.raises(Stopped):
            ask(stopped, what="t")
        assert len(stub.requests) == 1 and stopped.stopped


def test_a_rejected_key_is_final_and_never_shows_the_key() -> None:
    waits = Waits()
    with running_stub(Behavior(expected_key="another-key")) as stub:
        endpoint = client(stub, RetryPolicy(4, 0.01, 0.02), waits)
        with pytest.raises(Rejected) as rejected:
            ask(endpoint, what="t")
        assert len(stub.requests) == 1 and waits.seconds == []  # not retried
    assert rejected.value.key_rejected and rejected.value.status == 401
    assert rejected.value.describe().startswith("the endpoint rejected the API key (HTTP 401")
    assert SECRET not in rejected.value.describe()
    assert endpoint.redact(f"Bearer {SECRET} failed") == "Bearer *** failed"


def test_an_unreachable_endpoint_is_retried_and_named() -> None:
    endpoint = EndpointConfig(model="m", base_url="http://127.0.0.1:9/v1", env_file=None, timeout_s=5)
    waits = Waits()
    unreachable = EndpointClient(endpoint, RetryPolicy(2, 0.01, 0.02), api_key=SECRET, sleep=waits)
    with pytest.raises(GaveUp, match=r"connection to http://127.0.0.1:9/v1 failed"):
        ask(unreachable, what="t")
    assert len(waits.seconds) == 1
