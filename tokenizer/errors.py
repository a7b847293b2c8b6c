"""Exceptions of the tokenizer, all under :class:`TokenizerError`.

Messages name the file, row, field and rule that failed, never the value: inputs are
personal identifiers and error text ends up in logs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TokenizerError",
    "SchemaError",
    "SchemaIssue",
    "SecretError",
    "InputError",
    "InvalidRowsError",
    "AllRowsRejectedError",
]


class TokenizerError(Exception):
    """Base class of every error the tokenizer raises on purpose."""


@dataclass(frozen=True)
class SchemaIssue:
    """One problem in a linkage schema: where (a JSON path such as
    ``$.features[2].hashing.strategy``) and what is wrong there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SchemaError(TokenizerError):
    """A linkage schema is invalid. Carries every issue found, not only the first."""

    def __init__(self, source: str, issues: list[SchemaIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        noun = "problem" if len(issues) == 1 else "problems"
        super().__init__(f"invalid linkage schema {source} ({len(issues)} {noun}):\n{lines}")


class SecretError(TokenizerError):
    """The linkage secret could not be read, or is empty."""


class InputError(TokenizerError):
    """An input file cannot be read as records: missing, empty, wrong columns, bad format."""


class InvalidRowsError(TokenizerError):
    """Rows failed validation while ``strict`` was requested."""

    def __init__(self, source: str, count: int, first: str, rejects_path: str | None) -> None:
        self.count = count
        where = f"; all are listed in {rejects_path}" if rejects_path else ""
        super().__init__(
            f"{source}: {count} invalid row(s) and --strict is set, so nothing was written. "
            f"First: {first}{where}"
        )


class AllRowsRejectedError(TokenizerError):
    """Every row of a non-empty input was rejected: nothing was written."""

    def __init__(self, source: str, count: int, reasons: tuple[tuple[str, int], ...],
                 rejects_path: str | None) -> None:
        self.count = count
        self.reasons = reasons
        lines = "".join(f"\n  {n:,} x {reason}" for reason, n in reasons)
        where = f"; each row and its reason is in {rejects_path} (it holds identifiers: keep " \
                f"it at the site)" if rejects_path else ""
        super().__init__(f"{source}: all {count:,} rows were rejected, so no encodings file "
                         f"was written. Most frequent reasons:{lines}{where}")
