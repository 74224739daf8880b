"""The machine's time zone with its rules, and giving a wall-clock time its zone's offset *for that date*.

A journal heading ``## 2024-07-15 09:00`` written in Berlin means 09:00 summer time (+02:00) even when it is
imported in November (+01:00). Wall times the zone skips or repeats get one documented answer:

- in the spring-forward gap (02:30 on the night clocks go from 02:00 to 03:00) the time does not exist; it is
  shifted forward by the gap (02:30 becomes 03:30 summer time), as ``zoneinfo`` reads it with ``fold=0``;
- in the fall-back overlap (02:30 happens twice) the earlier one, still summer time, is taken (``fold=0``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_LOCALTIME = Path("/etc/localtime")


def local_zone() -> tzinfo:
    """The machine's zone with its daylight-saving rules: ``TZ`` when it names a zone, else ``/etc/localtime``; a
    fixed offset (today's) only when neither is readable."""
    name = os.environ.get("TZ", "").removeprefix(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with _LOCALTIME.open("rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or UTC


def localise(naive: datetime, zone: tzinfo) -> datetime:
    """``naive`` as a wall-clock time in ``zone``, with the offset that zone had on that date, as a fixed offset
    (times in a skipped hour move forward by the gap; a repeated hour takes its first occurrence). Raises
    ``OverflowError`` for a date too close to year 1 or 9999 to have an offset."""
    aware = naive.replace(tzinfo=zone, fold=0)
    real = aware.astimezone(UTC).astimezone(zone)  # a time in the gap comes back shifted forward
    offset = real.utcoffset() or timedelta(0)
    return real.replace(tzinfo=timezone(offset))
