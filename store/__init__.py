"""Persistence for ft-hallu: one SQLite file, opened through sqlite-utils.

Every other package reads and writes through the functions in this package; no SQL lives
outside ``store/``. Each domain module owns one named migration set (sqlite-utils
``Migrations``), applied in a fixed order by :func:`store.db.open_db`.
"""

from store.db import Store, open_db

__all__ = ["Store", "open_db"]
