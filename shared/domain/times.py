"""Instants in the registry are always time-zone aware UTC.

A client may send an ISO 8601 instant without an offset (`2027-01-01T00:00:00`) or a bare date (`2027-01-01`);
both are read as UTC (a date means 00:00 UTC that day). Normalising at the contract — and again when a stored
document is read — means no naive datetime ever reaches a comparison with `utcnow()` (which raised TypeError:
500 on create after the key was stored, then 500 on every list of the project's keys).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:59-05:00 lies past datetime.max in UTC
        raise ValueError("instant out of range") from None


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
