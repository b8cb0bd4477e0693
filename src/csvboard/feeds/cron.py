"""The cron expressions of scheduled feeds: checked when an admin saves a feed.

Five fields (minute hour day-of-month month day-of-week), evaluated in ``CSVBOARD_TIMEZONE`` by
the scheduler with croniter (``feeds/state.py``). The check is written here rather than
left to ``croniter.is_valid`` because croniter also accepts what the product does not promise
(a seconds field, ``L``, ``#``, ``@daily``) and says only "invalid"; an admin is told which
field is wrong and why.
"""

from __future__ import annotations

import re

from csvboard.errors import InvalidRequest

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (label, lowest, highest, names — names[i] stands for lowest + i)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_CRON_ITEM = re.compile(r"(?:(\*)|([0-9]+|[a-z]{3})(?:-([0-9]+|[a-z]{3}))?)(?:/([0-9]+))?")


def _cron_value(text: str, label: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.isdigit():
        value = int(text)
    elif text in names:
        value = low + names.index(text)
    else:
        raise ValueError(f"{label}: {text!r} is not a number or a name")
    if not low <= value <= high:
        raise ValueError(f"{label}: {value} is outside {low}–{high}")
    return value


def validate_cron(expression: str) -> str:
    """Check a 5-field cron expression (minute hour day-of-month month day-of-week).

    Each field is a comma-separated list of ``*``, ``N``, ``N-M``, optionally ``/STEP``;
    months and weekdays also by their English three-letter names. Returns the expression with
    its whitespace normalised; raises ``InvalidRequest(INVALID_SCHEDULE)``.
    """
    fields = expression.lower().split()
    if len(fields) != len(_CRON_FIELDS):
        raise InvalidRequest(
            "INVALID_SCHEDULE",
            f"a schedule is a cron expression of 5 fields (minute hour day-of-month month"
            f" day-of-week), e.g. '*/15 7-19 * * mon-fri'; {expression!r} has {len(fields)}",
        )
    try:
        for text, (label, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
            for item in text.split(","):
                match = _CRON_ITEM.fullmatch(item)
                if match is None:
                    raise ValueError(f"{label}: {item!r} is not *, N, N-M or one of them /STEP")
                star, first, last, step = match.groups()
                if not star:
                    start = _cron_value(first, label, low, high, names)
                    if last is not None and _cron_value(last, label, low, high, names) < start:
                        raise ValueError(f"{label}: the range {item!r} runs backwards")
                if step is not None and not 1 <= int(step) <= high:
                    raise ValueError(f"{label}: step {step} must be 1–{high}")
    except ValueError as exc:
        raise InvalidRequest("INVALID_SCHEDULE", f"schedule {expression!r}: {exc}") from None
    return " ".join(fields)
