"""What every tab's wiring shares: the model's concurrency group and turning UserError into a toast."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr

from engine.errors import UserError

MODEL_GROUP = "model"  # concurrency_id of every event that runs the model


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show a handler's UserError as a one-line toast instead of a stack trace."""

    # wraps() copies the signature and annotations gradio reads to inject gr.Request / gr.SelectData.
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    return call


def session(request: gr.Request | None) -> str:
    return (request.session_hash or "") if request is not None else ""
