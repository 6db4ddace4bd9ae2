"""The loaders' errors, apart so every format module can raise them without an import cycle."""

from mmemo.errors import UserError


class WhisperCheckpointError(UserError, ValueError):
    """A path that exists but cannot be read as a Whisper checkpoint."""


class CTranslate2FormatError(WhisperCheckpointError):
    """A CTranslate2 ``model.bin`` that is truncated, corrupt or uses an unknown dtype."""


class WhisperDownloadError(UserError, ConnectionError):
    """A model name was asked for, it is not cached, and OpenAI's server is unreachable."""
