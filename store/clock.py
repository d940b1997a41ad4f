"""The one timestamp format of the store (UTC, ISO 8601, milliseconds)."""

from __future__ import annotations

import datetime as _dt


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
