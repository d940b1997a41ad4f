"""Where the text comes from: a filing file, EDGAR, a texts file; cut into stable chunks."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.configfile import setting
from engine.errors import UserError, not_a_file
from engine.files import file_sha256
from engine.generate.config import INSTALL_HINT, PACKAGE_SEC_IDENTITY, SEC_IDENTITY_ENV


@dataclass(frozen=True)
class Chunk:
    id: str  # "<index>-<sha256 prefix>": stable across runs for the same text and chunking
    index: int
    text: str


def clean_item_text(text: str) -> str:
    """The package parser's clean-up of a filing item: one line, no dot/dash leaders, no '++' runs."""
    text = text.replace("\n", " ").strip()
    text = re.sub(r"-{3,}|\.{3,}", "", text)
    return re.sub(r"\+{2,}", "", text)


def load_filing_texts(path: str | Path) -> list[str]:
    """Texts of a local filing: one per 10-K/10-Q item for HTML (edgar's item chunker), else the whole text."""
    file_path = Path(path)
    if not file_path.is_file():
        raise not_a_file(file_path)
    suffix = file_path.suffix.lower()
    if suffix == ".pdf":
        texts = [_pdf_text(file_path)]
    else:
        raw = file_path.read_bytes()
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            content = raw.decode("latin-1")
        looks_html = suffix in (".htm", ".html", ".xhtml") or content.lstrip()[:200].lower().startswith(
            ("<!doctype html", "<html", "<?xml")
        )
        texts = _html_items(content, file_path) if looks_html else [content]
    texts = [clean_item_text(t) for t in texts]
    texts = [t for t in texts if t]
    if not texts:
        raise UserError(f"{file_path}: no text found in the filing")
    return texts


def _import_edgar() -> None:
    """Import edgartools without its import-time ``logging.basicConfig`` taking over the root logger."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        import edgar  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UserError(INSTALL_HINT) from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _html_items(html: str, path: Path) -> list[str]:
    _import_edgar()
    from edgar.htmltools import ChunkedDocument

    document = ChunkedDocument(html)
    items = [document[name] for name in document.list_items()]
    items = [text for text in items if text and text.strip()]
    if items:
        return items
    # No "Item N." headings (not a 10-K/10-Q layout): use every chunk's text in order.
    whole = "\n".join(document[i] or "" for i in range(len(document)))
    if not whole.strip():
        raise UserError(f"{path}: no text found in the HTML")
    return [whole]


def _pdf_text(path: Path) -> str:
    try:
        from PyPDF2 import PdfReader
        from PyPDF2.errors import PdfReadError
    except ModuleNotFoundError as exc:
        raise UserError(INSTALL_HINT) from exc
    try:
        reader = PdfReader(str(path))
        return "".join(page.extract_text() or "" for page in reader.pages)
    except PdfReadError as exc:
        raise UserError(f"{path}: not a readable PDF ({exc})") from None


def resolve_sec_identity(identity: str | None) -> str:
    value = (identity or os.environ.get(SEC_IDENTITY_ENV) or "").strip()
    if not value:
        raise UserError(
            f"EDGAR needs your own identity: pass --sec-identity 'Your Name you@example.com' or set {SEC_IDENTITY_ENV}"
        )
    if value == PACKAGE_SEC_IDENTITY:
        raise UserError("sec identity: use your own name and e-mail, not financial-datasets' shared default")
    if not re.search(r"\S+@\S+\.\S+", value):
        raise UserError(f"sec identity {value!r}: expected 'Name email@domain'")
    return value


def fetch_edgar_texts(
    ticker: str,
    year: int,
    *,
    sec_identity: str | None,
    form: str = "10-K",
    quarter: int | None = None,
    item_names: Sequence[str] = (),
) -> list[str]:
    """Items of a 10-K (or 10-Q) from EDGAR through financial-datasets' FilingParser (network)."""
    identity = resolve_sec_identity(sec_identity)
    if not ticker.strip():
        raise UserError("ticker is empty")
    _import_edgar()
    try:
        from financial_datasets.parser import FilingParser
    except ModuleNotFoundError as exc:
        raise UserError(INSTALL_HINT) from exc
    parser = FilingParser()
    try:
        if form == "10-K":
            texts = parser.get_10K_items(ticker, year, list(item_names), identity)
        elif form == "10-Q":
            if quarter not in (1, 2, 3, 4):
                raise UserError("a 10-Q needs --quarter 1..4")
            texts = parser.get_10Q_items(ticker, year, quarter, list(item_names), identity)
        else:
            raise UserError(f"form {form!r}: expected 10-K or 10-Q")
    except ValueError as exc:  # the parser's own messages: unknown item, no filing for that year
        raise UserError(f"EDGAR {ticker} {form} {year}: {exc}") from None
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise UserError(f"EDGAR {ticker} {form} {year}: the filing has no text items")
    return texts


def load_texts_file(path: str | Path) -> list[str]:
    """Texts from a JSON array / JSONL of strings or of objects with a 'text' field, or a plain text file."""
    file_path = Path(path)
    if not file_path.is_file():
        raise not_a_file(file_path)
    content = file_path.read_text(encoding="utf-8")
    if file_path.suffix.lower() not in (".json", ".jsonl"):
        return [content] if content.strip() else []
    stripped = content.lstrip()
    if stripped.startswith("["):
        try:
            values = json.loads(content)
        except json.JSONDecodeError as exc:
            raise UserError(f"{file_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        entries = list(enumerate(values, start=1))
    else:
        entries = []
        for line_no, line in enumerate(content.splitlines(), start=1):
            if line.strip():
                try:
                    entries.append((line_no, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{file_path}:{line_no}: invalid JSON: {exc.msg}") from None
    texts = []
    for where, value in entries:
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str):
            raise UserError(f"{file_path}:{where}: expected a string or an object with a 'text' string")
        texts.append(text)
    return texts


def split_text(text: str, chunk_chars: int, overlap_chars: int) -> list[str]:
    """Split on whitespace into pieces of at most ``chunk_chars`` (a longer single word stands alone)."""
    words = text.split()
    pieces: list[str] = []
    start = 0
    while start < len(words):
        end, size = start, 0
        while end < len(words) and (size + len(words[end]) + (end > start) <= chunk_chars or end == start):
            size += len(words[end]) + (end > start)
            end += 1
        pieces.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        # Step back over whole words worth at most overlap_chars, always moving forward.
        back, back_size = end, 0
        while back - 1 > start and back_size + len(words[back - 1]) + 1 <= overlap_chars:
            back -= 1
            back_size += len(words[back]) + 1
        start = back
    return pieces


def make_chunks(texts: Sequence[str], *, chunk_chars: int = 4000, overlap_chars: int = 400) -> list[Chunk]:
    """Chunk each text separately (as the package does per filing item); ids are stable."""
    chunks: list[Chunk] = []
    for text in texts:
        for piece in split_text(text, chunk_chars, overlap_chars):
            digest = hashlib.sha256(piece.encode("utf-8")).hexdigest()[:12]
            chunks.append(Chunk(id=f"{len(chunks):05d}-{digest}", index=len(chunks), text=piece))
    return chunks


@dataclass(frozen=True)
class SourceTexts:
    """A source once read: its texts and how the store describes it (no network or file access left)."""

    texts: list[str]
    described: dict[str, Any]

    def read(self) -> SourceTexts:
        """Already read: itself (so a run takes a :class:`QaSource` or what its ``read()`` gave)."""
        return self

    def chunks(self, *, chunk_chars: int, overlap_chars: int) -> list[Chunk]:
        return make_chunks(self.texts, chunk_chars=chunk_chars, overlap_chars=overlap_chars)


@dataclass(frozen=True)
class QaSource:
    """Where QA items are generated from: a local filing, a texts file, or a ticker and year on EDGAR."""

    filing: str = setting("", help="a local 10-K: HTML, PDF or text (instead of EDGAR)")
    texts: str = ""
    ticker: str = setting("", help="the company's ticker on EDGAR, e.g. NVDA")
    year: int | None = setting(None, help="the fiscal year of the filing, e.g. 2024")
    form: str = setting("10-K", help="10-K (annual) or 10-Q (quarterly)")
    quarter: int | None = setting(None, help="10-Q only: 1..4")
    sec_identity: str | None = setting(None, help='"Your Name you@example.com": EDGAR asks every user for one')
    items: tuple[str, ...] = ()

    def validate(self) -> None:
        given = [name for name in ("filing", "texts", "ticker") if getattr(self, name)]
        if len(given) != 1:
            raise UserError("source: give one of a ticker (with a year), a local filing or a texts file")
        if self.ticker and self.year is None:
            raise UserError("year: required with a ticker")

    @property
    def default_name(self) -> str:
        if self.ticker:
            return f"{self.ticker.upper()}-{self.year}"
        return Path(self.filing or self.texts).stem

    def read(self) -> SourceTexts:
        """The texts and the source's description for the store; EDGAR is fetched over the network."""
        self.validate()
        if self.filing or self.texts:
            path = Path(self.filing or self.texts).expanduser()
            texts = load_filing_texts(path) if self.filing else load_texts_file(path)
            kind = "filing" if self.filing else "texts"
            return SourceTexts(
                texts, {"kind": kind, "path": str(path.resolve()), "sha256": file_sha256(path)}
            )
        assert self.year is not None  # checked by validate()
        texts = fetch_edgar_texts(
            self.ticker,
            self.year,
            sec_identity=self.sec_identity,
            form=self.form,
            quarter=self.quarter,
            item_names=self.items,
        )
        described: dict[str, Any] = {"kind": "edgar", "ticker": self.ticker.upper(), "year": self.year}
        described["form"] = self.form
        if self.quarter:
            described["quarter"] = self.quarter
        return SourceTexts(texts, described)
