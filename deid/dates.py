"""Shifting DA and DT values by whole days; a value that cannot be shifted is emptied.

Times of day (TM) are left alone: a whole-day shift does not change them.
"""

from __future__ import annotations

from datetime import date, timedelta

__all__ = ["shift_date", "shift_datetime", "shift_value"]


def shift_date(value: str, days: int) -> str:
    """``YYYYMMDD`` (or a range ``A-B``) moved by ``days``; "" if any part is malformed."""
    if "-" in value:
        parts = [shift_date(part, days) if part else "" for part in value.split("-")]
        ok = all(p or not orig for p, orig in zip(parts, value.split("-"), strict=True))
        return "-".join(parts) if ok else ""
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return ""
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return (day + timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return ""


def shift_datetime(value: str, days: int) -> str:
    """``YYYYMMDD[HHMMSS[.F]][&ZZXX]`` with the date part moved; values without a full date
    (``YYYY``, ``YYYYMM``) cannot be shifted exactly and become ""."""
    text = value.strip()
    if len(text) < 8:
        return ""
    shifted = shift_date(text[:8], days)
    return shifted + text[8:] if shifted else ""


def shift_value(vr: str, value: str, days: int) -> str:
    """Shift one DA or DT value (TM is returned unchanged)."""
    if vr == "DA":
        return shift_date(value, days)
    if vr == "DT":
        return shift_datetime(value, days)
    return value
