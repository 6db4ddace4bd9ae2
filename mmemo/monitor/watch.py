"""Watch-folder mode: audio (and video) files dropped into a folder are analysed and moved aside.

Polling (no inotify dependency) works on network shares too. A file is taken once its size
has stayed the same for one poll, so half-copied recordings are not analysed. Files in a
sub-folder get that sub-folder's name as their channel (``DIR/line-7/call.wav`` ->
channel ``line-7``). Afterwards a file moves to ``DIR/.done/`` or, with a ``.error.txt``
beside it, to ``DIR/.failed/`` - so a restart never analyses a file twice.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from mmemo.data.audio import MEDIA_SUFFIXES

log = logging.getLogger(__name__)

SKIP = {".done", ".failed"}


class WatchFolder:
    def __init__(self, monitor, folder: Path, interval: float = 1.0, default_channel: str = "watch"):
        self.monitor, self.folder, self.interval = monitor, Path(folder), interval
        self.default_channel = default_channel
        self._sizes: dict[Path, int] = {}

    def candidates(self) -> list[Path]:
        found = []
        for path in sorted(self.folder.rglob("*")):
            relative = path.relative_to(self.folder)
            if any(part in SKIP or part.startswith(".") for part in relative.parts):
                continue
            if path.is_file() and path.suffix.lower() in MEDIA_SUFFIXES:
                found.append(path)
        return found

    def scan(self) -> list[dict]:
        """One poll: analyse every file whose size is unchanged since the previous poll."""
        results = []
        seen: dict[Path, int] = {}
        for path in self.candidates():
            try:
                size = path.stat().st_size
            except OSError:
                continue
            seen[path] = size
            if self._sizes.get(path) != size or size == 0:
                continue  # new or still growing
            results.append(self.process(path))
            seen.pop(path, None)
        self._sizes = seen
        return results

    def process(self, path: Path) -> dict:
        relative = path.relative_to(self.folder)
        channel = relative.parts[0] if len(relative.parts) > 1 else self.default_channel
        try:
            result = self.monitor.analyze_file(path, audio_id=str(relative), channel=channel, source="watch")
        except Exception as error:  # one bad file never stops the folder
            log.warning("watch folder: %s failed: %s", relative, error)
            target = self._move(path, ".failed")
            target.with_name(target.name + ".error.txt").write_text(f"{error}\n", encoding="utf-8")
            return {"file": str(relative), "error": str(error)}
        self._move(path, ".done")
        return {"file": str(relative), "record": result["record"]["id"], "alerts": len(result["alerts"])}

    def _move(self, path: Path, bucket: str) -> Path:
        target = self.folder / bucket / path.relative_to(self.folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target = target.with_name(f"{target.stem}.{path.stat().st_mtime_ns}{target.suffix}")
        shutil.move(str(path), target)
        return target

    def run(self, stop: threading.Event) -> None:
        log.info("watching %s every %g s", self.folder, self.interval)
        while not stop.wait(self.interval):
            try:
                self.scan()
            except Exception:
                log.exception("watch folder scan failed")
