"""Everything ``mmemo monitor serve`` can be told, checked once before the service starts."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

#: Environment variable read when ``--token`` is not given (keeps the token out of ``ps``).
TOKEN_ENV = "MMEMO_MONITOR_TOKEN"
#: Salt for ``--hash-ids`` (hashing without a secret salt is reversible for guessable ids).
SALT_ENV = "MMEMO_MONITOR_SALT"


class SettingsError(ValueError):
    """A service option that cannot work; the message names the option."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class MonitorSettings:
    model: str | None = None  # mmemo .ckpt | FunASR emotion2vec(+) dir | hub id
    device: str = "cpu"
    compute_dtype: str | None = None  # e.g. "bfloat16" (FunASR emotion2vec folders; passed to the encoder)
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    insecure_local: bool = False
    db_url: str | None = None  # default: sqlite:///<data_dir>/monitor.db
    data_dir: Path = Path("runs/monitor")
    rules: Path | None = None  # default: configs/monitor/rules.yaml
    rules_poll_seconds: float = 1.0
    watch: Path | None = None
    watch_poll_seconds: float = 1.0
    watch_channel: str = "watch"
    embeddings: bool = False  # save one .npy per analysed clip under data_dir/embeddings
    smooth: int = 1  # frames per score window (see mmemo.inference.timeline)
    # StreamSession segments: compute per audio second is (context + hop + lookahead) / hop
    stream_hop_s: float = 1.0
    stream_context_s: float = 1.0
    stream_lookahead_s: float = 0.5
    max_upload_mb: float = 25.0
    max_duration_s: float = 600.0  # per upload
    max_stream_s: float = 4 * 3600.0  # per stream session
    max_chunk_bytes: int = 1 << 20  # per WebSocket message
    cors_origins: list[str] = field(default_factory=list)  # empty: CORS off
    retention_days: float | None = None
    hash_ids: bool = False
    salt: str | None = None
    batch_size: int = 8  # analyze requests folded into one model call
    batch_wait_ms: float = 5.0
    webhook_backoff_scale: float = 1.0

    def resolve(self) -> "MonitorSettings":
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
        elif len(self.token) < 16:
            raise SettingsError("--token is too short: use at least 16 characters "
                                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if self.hash_ids and self.salt is None:
            self.salt = os.environ.get(SALT_ENV)
            if not self.salt:
                raise SettingsError(f"--hash-ids needs a secret salt: set {SALT_ENV} (a hash of a guessable id "
                                    f"without a salt can be reversed by trying ids)")
        for name in ("max_upload_mb", "max_duration_s", "max_stream_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if self.retention_days is not None and self.retention_days <= 0:
            raise SettingsError(f"--retention-days must be > 0, got {self.retention_days}")
        if self.watch is not None and not Path(self.watch).is_dir():
            raise SettingsError(f"--watch {self.watch}: not a folder")
        if self.db_url is None:
            self.db_url = f"sqlite:///{(self.data_dir / 'monitor.db').resolve()}"
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
