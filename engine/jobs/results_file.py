"""The file a sweep job writes its rows to instead of the login node's store: append-only JSONL.

One file per shard attempt, ``<job folder>/results/shard-<K>.<attempt>.jsonl``. Line 1 is a header
(the sweep's identity and configuration, the shard and its size), then one line per generated row,
written a batch at a time and fsync'd before the next batch starts, then an ``end`` line when the
attempt stops on its own. A job killed half-way leaves every finished batch and at most one partial
last line, which readers ignore. Nothing here ever opens a SQLite file, so the results can sit on a
network filesystem; readers only read, so progress can be watched from the login node.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "ft-hallu-results/1"
RESULTS_DIR = "results"
_NAME_RE = re.compile(r"^shard-(\d+)\.([A-Za-z0-9_-]+)\.jsonl$")

RowKey = tuple[str, float, float, int, str, int]  # variant, temperature, top_p, top_k, prompt_id, sample


def row_key(row: dict[str, Any]) -> RowKey:
    return (
        str(row["variant"]),
        float(row["temperature"]),
        float(row["top_p"]),
        int(row["top_k"]),
        str(row["prompt_id"]),
        int(row["sample_index"]),
    )


def results_path(job_dir: str | Path, shard: int, attempt: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", attempt):
        raise ValueError(f"attempt id {attempt!r}: letters, digits, _ and - only")
    return Path(job_dir) / RESULTS_DIR / f"shard-{shard:03d}.{attempt}.jsonl"


def results_files(job_dir: str | Path, shard: int | None = None) -> list[Path]:
    """Every results file of the job (or of one shard), in name order."""
    folder = Path(job_dir) / RESULTS_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        match = _NAME_RE.match(path.name)
        if match and (shard is None or int(match.group(1)) == shard):
            found.append(path)
    return found


class ResultsWriter:
    """Appends one attempt's rows; each :meth:`append` is durable (fsync) when it returns."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open(path, "ab")  # noqa: SIM115 - kept open for the whole attempt
        self.rows = 0
        self._write([{"kind": "header", "format": FORMAT, "started": time.time(), **header}])

    def _write(self, records: Iterable[dict[str, Any]]) -> None:
        data = b"".join(
            json.dumps(record, sort_keys=True, ensure_ascii=False).encode() + b"\n" for record in records
        )
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def append(self, rows: Sequence[dict[str, Any]]) -> int:
        now = time.time()
        self._write({"kind": "row", "t": now, **row} for row in rows)
        self.rows += len(rows)
        return len(rows)

    def close(self, status: str) -> None:
        """Write the end line (``completed`` or ``stopped``) and close the file."""
        if self._handle.closed:
            return
        self._write([{"kind": "end", "status": status, "rows": self.rows, "t": time.time()}])
        self._handle.close()


@dataclass
class ResultsFile:
    path: Path
    header: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    partial_tail: bool = False  # the file ends in an unfinished line (the writer was killed)
    bad_lines: int = 0

    @property
    def shard(self) -> int:
        return int(self.header.get("shard", 0))


def read_results(path: str | Path) -> ResultsFile | None:
    """Parse one results file read-only; None when it has no complete header line yet."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    lines = data.split(b"\n")
    partial = lines[-1] != b""
    complete = lines[:-1]  # a last piece without its newline was cut off mid-write
    header: dict[str, Any] | None = None
    parsed = ResultsFile(path=path, header={}, partial_tail=partial)
    for raw in complete:
        try:
            record = json.loads(raw)
        except ValueError:
            parsed.bad_lines += 1
            continue
        kind = record.get("kind")
        if kind == "header" and header is None:
            header = record
        elif kind == "row" and header is not None:
            parsed.rows.append(record)
        elif kind == "end":
            parsed.end = record
        else:
            parsed.bad_lines += 1
    if header is None or header.get("format") != FORMAT:
        return None
    parsed.header = header
    return parsed


def read_job_results(job_dir: str | Path, shard: int | None = None) -> list[ResultsFile]:
    return [parsed for path in results_files(job_dir, shard) if (parsed := read_results(path))]


@dataclass(frozen=True)
class ShardProgress:
    shard: int
    done: int  # distinct rows finished, over every attempt
    planned: int
    finished: bool  # an attempt wrote its end line with every row done


@dataclass(frozen=True)
class SweepJobProgress:
    done: int
    planned: int
    rows_per_second: float | None  # summed over attempts still writing (else over all); None: no rows
    shards: list[ShardProgress]

    @property
    def complete(self) -> bool:
        return self.planned > 0 and self.done >= self.planned

    def line(self) -> str:
        rate = "" if self.rows_per_second is None else f"  {self.rows_per_second:.2f} rows/s"
        return f"{self.done}/{self.planned} rows{rate}"


def job_progress(job_dir: str | Path, planned_per_shard: Sequence[int]) -> SweepJobProgress:
    """Rows done per shard and overall, and the current rate, from the results files alone.

    ``planned_per_shard`` is what the launch planned; a header's own count wins when present.
    """
    files = read_job_results(job_dir)
    planned = list(planned_per_shard)
    keys: dict[int, set[RowKey]] = {}
    finished: set[int] = set()
    active_rates: list[float] = []
    all_rates: list[float] = []
    for parsed in files:
        shard = parsed.shard
        while len(planned) <= shard:
            planned.append(0)
        planned[shard] = int(parsed.header.get("shard_rows", planned[shard]))
        keys.setdefault(shard, set()).update(row_key(r) for r in parsed.rows)
        if parsed.end and parsed.end.get("status") == "completed":
            finished.add(shard)
        if parsed.rows:
            began = float(parsed.header.get("started", parsed.rows[0]["t"]))
            rate = len(parsed.rows) / max(float(parsed.rows[-1]["t"]) - began, 1e-6)
            all_rates.append(rate)
            if parsed.end is None:
                active_rates.append(rate)
    shards = [
        ShardProgress(
            k, len(keys.get(k, ())), planned[k], k in finished or len(keys.get(k, ())) >= planned[k] > 0
        )
        for k in range(len(planned))
    ]
    rates = active_rates or all_rates
    rate = sum(rates) if rates else None
    return SweepJobProgress(sum(s.done for s in shards), sum(planned), rate, shards)
