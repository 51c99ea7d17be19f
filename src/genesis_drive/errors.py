"""Errors that reach users: each names the file, field and expected form."""

from __future__ import annotations


class GenesisError(Exception):
    """Base class of the errors the CLI reports as one clear line (no traceback)."""


class DataError(GenesisError):
    """A dataset root, table, record or file is missing or malformed."""

    def __init__(self, message: str, path: object = None, field: str | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)
        self.path = path
        self.field = field


class ConfigError(GenesisError):
    """An unknown preset, key, or a wrongly typed override."""
