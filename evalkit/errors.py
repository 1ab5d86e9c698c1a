"""The one line a user sees of an exception evalkit did not raise itself."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int | None = None, with_type: bool = False) -> str:
    """The first line of `exc`'s message, cut to `limit` characters, after `Type: ` when `with_type`; the type's
    name alone when the message is empty (never an IndexError while reporting another error)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0][:limit]
    return f"{type(exc).__name__}: {line}" if with_type else line
