"""Errors meant for the person at the keyboard.

A ``UserError`` says what was wrong with their input and how to fix it. The command line
prints it as one line, ``evolve: error: <message>``, and exits with status 2; it never
shows a traceback. Raise it only for bad input (an unknown name, a wrong type, a missing
or corrupt run directory), never for a bug in the engine.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: the message names the field, the value and the fix, on one line."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, or ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
