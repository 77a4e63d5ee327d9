"""User-facing errors.

Every error a user can cause (a bad file, a bad config value) is a :class:`TwinError` whose
message names the file, the field and what was expected. The CLI prints the message as one
line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


class TwinError(Exception):
    """An error caused by the user's input, reported as one clear line."""


class InputError(TwinError):
    """A file or config value is not what `twin` expects.

    The message reads ``<file>: <field>: expected <expected>[, got <got>]``.
    """

    def __init__(self, path: str | PathLike | None, field: str, expected: str, got: object = None):
        self.path = None if path is None else str(path)
        self.field = field
        self.expected = expected
        self.got = got
        where = f"{self.path}: " if self.path else ""
        tail = "" if got is None else f", got {got}"
        super().__init__(f"{where}{field}: expected {expected}{tail}")
