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

URLs: :func:`redact_url` is the one redaction for a URL that is printed, logged, stored or written
(an endpoint's ``--base-url``): the user information (``user:password@``) becomes ``***@`` and the
value of every query key that names a credential (``key``, ``api_key``, ``token``,
``access_token``, ``sig``, ``signature``, ``password``, ``secret``, ``auth``, ``code`` and any
name the rule above calls secret) becomes ``***``. :func:`redact` applies it to every URL inside a
text and hides the token formats above, for messages and error lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

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


MASK = "***"
# Query keys that carry a credential in the URLs of model endpoints, object stores and webhooks.
SECRET_QUERY_KEYS = frozenset(
    {
        "key", "api_key", "apikey", "api-key", "token", "access_token", "refresh_token", "id_token",
        "auth", "auth_token", "authorization", "sig", "signature", "password", "passwd", "pwd", "pass",
        "secret", "client_secret", "code", "session", "sessionid", "credential", "credentials",
        "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature", "sv", "se",
    }
)  # fmt: skip
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _secret_query_key(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_QUERY_KEYS or looks_secret_name(lowered.replace("-", "_"))


def _userinfo_end(rest: str) -> int:
    """Where the user information of ``rest`` (a URL after ``://``) ends (its last '@'), or -1.

    A password may hold a '/' (``redis://:pa/ss@host``), which a URL parser reads as the path.
    """
    stop = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, stop)
    if at < 0:
        return -1
    head = rest[:at]
    if "/" not in head:
        return at
    first = head.split("/", 1)[0]
    user, colon, after = first.partition(":")
    return at if colon and not after.isdigit() else -1  # host:8080/@scope/pkg is a path


def redact_url(url: str) -> str:
    """``url`` without its credentials: user information and secret query values become ``***``.

    ``http://user:pass@host:8000/v1?key=abc&x=1`` -> ``http://***@host:8000/v1?key=***&x=1``. A text
    that does not parse as a URL keeps its shape, with every token format hidden (see :func:`redact`).
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        at = _userinfo_end(rest)
        if at >= 0:
            rest = f"{MASK}@{rest[at + 1 :]}"
        url = f"{scheme}://{rest}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return _SECRET_VALUE.sub(MASK, url)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_query_key(name) for name, _ in pairs):
            query = "&".join(
                f"{quote(name, safe='')}={MASK if _secret_query_key(name) else quote(value, safe='')}"
                for name, value in pairs
            )
    fragment = MASK if "=" in parts.fragment else parts.fragment  # OAuth's #access_token=...
    if query != parts.query or fragment != parts.fragment:
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, fragment))
    return _SECRET_VALUE.sub(MASK, url)


def redact(text: str) -> str:
    """``text`` with every URL's credentials and every secret-looking value replaced by ``***``."""
    return _SECRET_VALUE.sub(MASK, _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text))
