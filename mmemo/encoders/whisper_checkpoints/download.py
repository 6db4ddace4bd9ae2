"""Official model names (``tiny.en``, ``base``, ..., ``large-v3``, ``turbo``).

openai-whisper downloads these itself, but offline its download hangs; so an uncached name
first probes the server, bounded in time, and fails within seconds with a message naming
the local formats that work instead.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

from mmemo.encoders.whisper_checkpoints.errors import WhisperDownloadError

if TYPE_CHECKING:
    from whisper.model import Whisper

#: Seconds to wait for OpenAI's download server before declaring the machine offline.
PROBE_TIMEOUT_S = 3.0


def _model_urls() -> dict[str, str]:
    import whisper

    return whisper._MODELS  # the one table of official names -> URLs; read at call time


def _default_download_root() -> str:
    cache = os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return os.path.join(cache, "whisper")  # the same default as whisper.load_model


def _cached_download(name: str, download_root: str | None) -> str | None:
    target = os.path.join(download_root or _default_download_root(), os.path.basename(_model_urls()[name]))
    return target if os.path.isfile(target) else None


def _load_by_name(name: str, download_root: str | None, device: str) -> Whisper:
    import whisper

    if _cached_download(name, download_root) is None:
        url = _model_urls()[name]
        reachable, reason = _url_reachable(url, PROBE_TIMEOUT_S)
        if not reachable:
            raise WhisperDownloadError(_offline_message(name, url, download_root, reason))
    model = whisper.load_model(name, device=device, download_root=download_root)
    return model.float().eval()


def _url_reachable(url: str, timeout: float) -> tuple[bool, str]:
    """Whether the server answers at all, bounded in time even when DNS itself hangs."""
    outcome: list[tuple[bool, str]] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            outcome.append((True, ""))
        except urllib.error.HTTPError:
            outcome.append((True, ""))  # the server answered; whisper's download will report details
        except Exception as error:  # noqa: BLE001 - any failure means "unreachable"
            outcome.append((False, f"{type(error).__name__}: {error}"))

    thread = threading.Thread(target=probe, name="whisper-url-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return outcome[0] if outcome else (False, f"no answer within {timeout:.0f} s")


def _offline_message(name: str, url: str, download_root: str | None, reason: str) -> str:
    host = urllib.parse.urlparse(url).netloc
    root = download_root or _default_download_root()
    return (
        f"Whisper model {name!r} is not cached in {root} and cannot be downloaded: {host} is "
        f"unreachable ({reason}).\nUse a local checkpoint instead; each of these works as the path:\n"
        f"  - an openai-whisper .pt file:           model.speech.path=/models/{name}.pt\n"
        f"  - a Hugging Face Whisper folder:        model.speech.path=/models/whisper-{name}   "
        "(config.json + model.safetensors)\n"
        f"  - a CTranslate2/faster-whisper folder:  model.speech.path=/models/faster-whisper-{name}   "
        "(model.bin + config.json)\n"
        f"or copy {os.path.basename(url)} into {root}."
    )
