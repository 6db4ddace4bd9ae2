"""Everything ``mmemo monitor serve`` can be told, checked once before the service starts."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass
from pathlib import Path

from mmemo.arguments import option, optional_dbfs
from mmemo.data.audio import SILENCE_DBFS, silence_peak
from mmemo.errors import UserError

#: Environment variable read when ``--token`` is not given (keeps the token out of ``ps``).
TOKEN_ENV = "MMEMO_MONITOR_TOKEN"
#: Salt for ``--hash-ids`` (hashing without a secret salt is reversible for guessable ids).
SALT_ENV = "MMEMO_MONITOR_SALT"
SMTP_PASSWORD_ENV = "MMEMO_SMTP_PASSWORD"
MIN_TOKEN_LENGTH = 16
MIN_TOKEN_DISTINCT = 8


class SettingsError(UserError, ValueError):
    """A service option that cannot work; the message names the option."""


def weak_token(token: str) -> str | None:
    """Why a bearer token is too easy to guess (or cannot be sent in a header), or None."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"it has {len(token)} characters, fewer than {MIN_TOKEN_LENGTH}"
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in token):
        return "it contains whitespace, control or non-ASCII characters"
    if len(set(token)) < MIN_TOKEN_DISTINCT:
        return f"it uses only {len(set(token))} distinct characters (at least {MIN_TOKEN_DISTINCT} are needed)"
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class MonitorSettings:
    """The service's options; fields declared with :func:`~mmemo.arguments.option` are its command line."""

    model: str | None = option(None, required=True,
                               help="mmemo checkpoint (.ckpt), FunASR emotion2vec(+) folder or hub id")
    device: str = option("cpu", help="torch device for the model")
    compute_dtype: str | None = option(None, choices=("float32", "bfloat16"),
                                       help="encoder compute dtype for FunASR emotion2vec folders "
                                            "(bfloat16: ~2x faster on CPUs with bf16)")
    host: str = option("127.0.0.1", help="address to listen on")
    port: int = option(8000, help="port to listen on")
    token: str | None = option(None, help=f"bearer token (default: ${TOKEN_ENV}; prefer the env var)")
    insecure_local: bool = option(False, help="no token; only allowed with a loopback --host (demos)")
    db_url: str | None = option(None, help="SQLAlchemy URL, e.g. postgresql+psycopg://... "
                                           "(default: SQLite DATA_DIR/monitor.db)")
    data_dir: Path = option(Path("runs/monitor"), help="SQLite file and embeddings")
    rules: Path | None = option(None, help="rules YAML (default: configs/monitor/rules.yaml); hot-reloaded")
    rules_poll_seconds: float = 1.0
    watch: Path | None = option(None, metavar="DIR", help="also analyse audio or video files dropped into DIR")
    watch_poll_seconds: float = 1.0
    watch_channel: str = "watch"
    embeddings: bool = option(False, help="save each clip's embedding (.npy) in DATA_DIR")
    explain: bool = option(False, help="store a short reason per upload written by a language model (marked as "
                                       "generated; about a second per upload with SmolLM2); not with --segments vad")
    explain_model: str = option("smollm2", metavar="LM", help="the explaining LM: smollm2 (packaged), a .gguf "
                                                              "file, a transformers folder or a hub id")
    smooth: int = option(1, help="frames per frame-score window (1 = none; see mmemo.inference.timeline)")
    # StreamSession segments: compute per audio second is (context + hop + lookahead) / hop
    stream_hop_s: float = option(1.0, flag="--stream-hop",
                                 help="seconds of new audio per streamed segment (latency vs compute)")
    stream_context_s: float = option(1.0, flag="--stream-context",
                                     help="seconds of past audio re-encoded with each segment")
    stream_lookahead_s: float = option(0.5, flag="--stream-lookahead", help="seconds of future audio a frame waits for")
    max_upload_mb: float = option(25.0, help="largest upload, MB")
    max_duration_s: float = option(600.0, flag="--max-duration", help="seconds per upload")
    max_stream_s: float = option(4 * 3600.0, flag="--max-stream", help="seconds per stream session")
    max_chunk_bytes: int = 1 << 20  # per WebSocket message
    cors_origins: list[str] = option(default_factory=list, flag="--cors-origin",
                                     help="allow this origin (repeatable; CORS is off by default)")
    retention_days: float | None = option(None, help="delete results older than this (default: keep)")
    hash_ids: bool = option(False, help=f"store salted hashes of audio ids (salt: ${SALT_ENV})")
    salt: str | None = None
    batch_size: int = option(8, help="uploads folded into one model call")
    batch_wait_ms: float = 5.0
    webhook_backoff_scale: float = 1.0
    webhook_allow_hosts: list[str] = option(default_factory=list, flag="--allow-webhook-host", metavar="HOST",
                                            help="let webhooks reach HOST even if it is link-local or a cloud "
                                                 "metadata name (repeatable)")
    segments: str = option("none", choices=("none", "vad"),
                           help="vad: analyse uploads, watched files and live streams in speech segments "
                                "(docs/long_recordings.md)")
    diarize: bool = option(False, help="with --segments vad: speaker turns; records are filtered by speaker")
    num_speakers: int | None = option(None, help="with --diarize: the number of speakers (default: estimated)")
    asr: str | None = option(None, metavar="WHISPER", help="with --segments vad: transcribe each segment (any Whisper "
                                                           "format) so a text branch gets text")
    asr_language: str | None = option("en", help="ASR language for multilingual Whisper models ('auto': detect)")
    vad_padding: float = option(0.1, help="with --segments vad: seconds added before each segment")
    vad_padding_after: float | None = option(None, help="with --segments vad: seconds added after each segment "
                                                        "(default: --vad-padding); match the training clips' margins")
    smtp_host: str | None = option(None, help="SMTP server for e-mail actions (none: e-mail actions fail clearly)")
    smtp_port: int = option(25, help="SMTP port")
    smtp_from: str = option("mmemo@localhost", help="sender address of alert e-mails")
    smtp_user: str | None = option(None, help=f"SMTP login (password from ${SMTP_PASSWORD_ENV}, never a flag)")
    smtp_starttls: bool = option(False, help="STARTTLS before login")
    silence_dbfs: float | None = option(SILENCE_DBFS, parse=optional_dbfs,
                                        help="uploads whose peak is below this level (dBFS) are refused as silent; "
                                             "none: no check")
    max_concurrent_decodes: int = option(2, help="uploads decoded at once (each holds up to --max-duration of "
                                                 "audio: bounds the memory peak)")

    def resolve(self) -> MonitorSettings:
        """Fill defaults from the environment and refuse unsafe or impossible combinations."""
        self.data_dir = Path(self.data_dir)
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV) or None
        if self.insecure_local:
            if not is_loopback(self.host):
                raise SettingsError(f"--insecure-local serves without a token and is only allowed on a loopback "
                                    f"address (127.0.0.1, ::1, localhost); --host is {self.host!r}")
        elif not self.token:
            raise SettingsError(f"a bearer token is required: pass --token or set {TOKEN_ENV} "
                                f"(or --insecure-local for a demo bound to 127.0.0.1)")
        else:
            problem = weak_token(self.token)
            if problem:
                raise SettingsError(f"the token is too weak: {problem}; make one with "
                                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if self.hash_ids and self.salt is None:
            self.salt = os.environ.get(SALT_ENV)
            if not self.salt:
                raise SettingsError(f"--hash-ids needs a secret salt: set {SALT_ENV} (a hash of a guessable id "
                                    f"without a salt can be reversed by trying ids)")
        positive = ("max_upload_mb", "max_duration_s", "max_stream_s", "stream_hop_s", "retention_days")
        at_least_zero = ("stream_context_s", "stream_lookahead_s", "rules_poll_seconds", "watch_poll_seconds",
                         "batch_wait_ms", "webhook_backoff_scale")
        for name in positive + at_least_zero:
            value = getattr(self, name)
            if value is None and name == "retention_days":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (value == 0 and name in positive):
                bound = "> 0" if name in positive else ">= 0"
                raise SettingsError(f"--{name.removesuffix('_s').replace('_', '-')} must be a finite number "
                                    f"{bound}, got {value!r}")
        for name in ("batch_size", "max_concurrent_decodes", "smooth", "max_chunk_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        try:
            silence_peak(self.silence_dbfs)
        except ValueError as error:
            raise SettingsError(f"--silence-dbfs: {error}") from None
        if self.segments == "none" and (self.diarize or self.asr):
            raise SettingsError("--diarize and --asr work on speech segments: add --segments vad")
        if self.num_speakers is not None and self.num_speakers < 1:
            raise SettingsError(f"--num-speakers must be >= 1, got {self.num_speakers}")
        if self.watch is not None and not Path(self.watch).is_dir():
            raise SettingsError(f"--watch {self.watch}: not a folder")
        if self.db_url is None:
            self.db_url = f"sqlite:///{(self.data_dir / 'monitor.db').resolve()}"
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
