"""The one line a user sees of an error, and its full chain of causes behind EVALKIT_DEBUG=1."""

from __future__ import annotations

import os
import sys
import traceback

DEBUG_ENV = "EVALKIT_DEBUG"


def debug_enabled() -> bool:
    """Whether EVALKIT_DEBUG is set to anything but empty or 0: errors then show their traceback and causes."""
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def show_traceback(exc: BaseException) -> None:
    """Under EVALKIT_DEBUG=1, `exc`'s traceback with its chain of causes on stderr; nothing otherwise."""
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)


def print_error(prog: str, exc: BaseException | str) -> None:
    """`<prog>: error: <message>` on stderr, one line; under EVALKIT_DEBUG=1 the traceback and its causes first."""
    if isinstance(exc, BaseException):
        show_traceback(exc)
    print(f"{prog}: error: {exc}", file=sys.stderr)


def first_line(exc: BaseException, limit: int | None = None, with_type: bool = False) -> str:
    """The first line of `exc`'s message, cut to `limit` characters, after `Type: ` when `with_type`; the type's
    name alone when the message is empty (never an IndexError while reporting another error)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0][:limit]
    return f"{type(exc).__name__}: {line}" if with_type else line
