"""The one base of every error a user causes, and so can fix: shown as a message, never a traceback.

Every ``mmemo`` command handles :class:`UserError` the same way: the message (which names the
file, line, option or value at fault) on standard error and exit status 2. Anything else is a
bug and keeps its traceback. ``MMEMO_DEBUG=1`` shows the traceback of user errors too.

Concrete errors subclass :class:`UserError` and the built-in exception they refine, so code
(and users' code) that catches ``ValueError`` or ``FileNotFoundError`` keeps working.
"""

from __future__ import annotations

import os

#: The environment variable that makes every command show tracebacks of user errors.
DEBUG_ENV = "MMEMO_DEBUG"


class UserError(Exception):
    """A problem with what the user gave mmemo: a file, a path, an option, a value."""


class InvalidInput(UserError, ValueError):
    """A value that cannot be used: an option out of range, a malformed file, an unknown name."""


class MissingInput(UserError, FileNotFoundError):
    """Something the user pointed at that is not there (a file, a folder, a fold, a model)."""


class MediaError(UserError, ValueError):
    """A clip (audio or video) that cannot be used; ``reason`` is a short machine-friendly summary.

    The data module's bad-clip policy (``data.on_bad_audio``), the feature cache and prediction
    handle every kind the same way; subclasses only name the kind (``AudioError``, ``VideoError``).
    """

    kind = "media"

    def __init__(self, path, reason: str, key: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.key = key
        who = f"key {key!r}, " if key else ""
        super().__init__(f"bad {self.kind} ({who}file {self.path}): {reason}")


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


class MissingDependency(UserError, RuntimeError):
    """A program, package, credential or service the command needs and this machine lacks."""
