"""What counts as a secret, by a variable's name or by its value; used to filter job environments.

The rule (documented in docs/LAUNCH.md):

* a name is secret-looking when one of its ``_``-separated parts is ``KEY``, ``APIKEY``, ``PAT``,
  ``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``, ``PASSPHRASE``, ``CREDENTIAL(S)``, ``AUTH`` or
  ``COOKIE``, when it contains ``API_KEY``, ``ACCESS_KEY``, ``PRIVATE_KEY``, ``SECRET``, ``PASSWORD``
  or ``PASSWD``, ends in ``TOKEN``, or is ``DATABASE_URL`` (or ends in ``_DSN``);
* a value is secret-looking when it holds a URL with a password (``scheme://user:pass@host``), a
  private key block, a JSON web token, or a token with a well-known prefix: ``sk-`` (OpenAI,
  Anthropic), ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``/``github_pat_`` (GitHub), ``glpat-``
  (GitLab), ``hf_`` (Hugging Face), ``xox?-`` (Slack), ``AKIA``/``ASIA`` (AWS), ``AIza`` (Google),
  ``npm_``, ``pypi-``.

A variable is dropped when its name or its value looks secret, unless it is listed in ``keep``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_SECRET_PARTS = frozenset(
    {
        "KEY",
        "APIKEY",
        "PAT",
        "TOKEN",
        "TOKENS",
        "SECRET",
        "SECRETS",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "CREDENTIAL",
        "CREDENTIALS",
        "AUTH",
        "COOKIE",
    }
)
# Substrings, so MYAPPSECRET or DB_PASSWORD_FILE count; TOKEN only as a part or an ending, since
# TOKENIZERS_PARALLELISM is no secret.
_SECRET_SUBSTRINGS = ("API_KEY", "APIKEY", "ACCESS_KEY", "PRIVATE_KEY", "SECRET", "PASSWORD", "PASSWD")
_SECRET_NAMES = frozenset({"DATABASE_URL"})

_SECRET_VALUE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@"  # URL with a password
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\."  # JSON web token
    r"|(?<![A-Za-z0-9])(?:"
    r"sk-[A-Za-z0-9_-]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_-]{16,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{30,}"
    r"|npm_[A-Za-z0-9]{30,}|pypi-[A-Za-z0-9_-]{30,}"
    r")"
)


def looks_secret_name(name: str) -> bool:
    """True for a variable name that suggests a credential (GITHUB_PAT, OPENAI_KEY, DATABASE_URL...)."""
    upper = name.upper()
    if upper in _SECRET_NAMES or upper.endswith("_DSN"):
        return True
    if any(part in _SECRET_PARTS for part in re.split(r"[_\W]+", upper)):
        return True
    return upper.endswith("TOKEN") or any(fragment in upper for fragment in _SECRET_SUBSTRINGS)


def looks_secret_value(value: str) -> bool:
    """True for a value holding a credential: a URL with a password or a known token format."""
    return bool(_SECRET_VALUE.search(value))


def filter_environment(env: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
    """``env`` without the variables whose name or value looks like a secret, except ``keep``."""
    kept = set(keep)
    return {
        name: value
        for name, value in env.items()
        if name in kept or not (looks_secret_name(name) or looks_secret_value(value))
    }


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``***`` (for messages and logs)."""
    return _SECRET_VALUE.sub("***", text)
