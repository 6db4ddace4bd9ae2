"""Transcripts of speech segments at inference, with word timestamps, cached by model fingerprint.

The training cascade (:mod:`mmemo.data.asr`) decodes whole utterances without timestamps; here
each segment goes through Whisper's own ``transcribe`` with ``word_timestamps`` (cross-attention
alignment), so words carry their times in the recording. Any Whisper format ``load_whisper``
reads works (name, ``.pt``, Hugging Face or CTranslate2 folder, the packaged tiny.en and base).
The cache is keyed by the weights' fingerprint, the language and the segment's samples, so a
rerun (or the monitor seeing a file twice) transcribes nothing again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from mmemo.errors import InvalidInput

log = logging.getLogger(__name__)


class SegmentTranscriber:
    """``transcribe(wave, start)`` -> ``{"text", "words": [{"word", "start", "end", "probability"}]}``."""

    def __init__(self, path: str, *, language: str | None = "en", cache_dir: str | os.PathLike | None = None,
                 device: str = "cpu"):
        from mmemo.data.asr import weights_fingerprint
        from mmemo.encoders.whisper_checkpoints import load_whisper

        if not path:
            raise InvalidInput("--asr needs a Whisper model: a name, an openai-whisper .pt file, a Hugging Face "
                               "Whisper folder or a CTranslate2/faster-whisper folder")
        self.path = str(path)
        self.model = load_whisper(self.path).to(device).eval()
        if not self.model.is_multilingual:
            if language not in (None, "en"):
                raise InvalidInput(f"--asr-language {language}: {path} is an English-only Whisper model")
            language = "en"
        self.language = language
        self.fingerprint = weights_fingerprint(self.model)
        self.cache_file = (Path(cache_dir) / f"{self.fingerprint}-{language or 'auto'}-words" / "segments.jsonl"
                           if cache_dir else None)
        self.entries: dict[str, dict] = {}
        if self.cache_file is not None and self.cache_file.is_file():
            for number, line in enumerate(self.cache_file.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    record = json.loads(line)
                    self.entries[record["id"]] = {"text": record["text"], "words": record["words"]}
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s:%d: unreadable cache line ignored (an interrupted write)", self.cache_file, number)
        self.transcribed = self.reused = 0

    def transcribe(self, wave: np.ndarray, offset: float = 0.0) -> dict:
        """The segment's text and words; word times are in the recording (``offset`` + segment time)."""
        ident = hashlib.sha256(np.ascontiguousarray(wave, dtype=np.float32).tobytes()).hexdigest()[:32]
        found = self.entries.get(ident)
        if found is None:
            found = self._run(wave)
            self._store(ident, found)
            self.transcribed += 1
        else:
            self.reused += 1
        return {"text": found["text"],
                "words": [{**w, "start": round(w["start"] + offset, 3), "end": round(w["end"] + offset, 3)}
                          for w in found["words"]]}

    def _run(self, wave: np.ndarray) -> dict:
        import whisper

        with torch.inference_mode():
            result = whisper.transcribe(self.model, np.ascontiguousarray(wave, dtype=np.float32),
                                        language=self.language, word_timestamps=True, condition_on_previous_text=False,
                                        fp16=False, verbose=None, temperature=0.0)
        words = [{"word": w["word"].strip(), "start": round(float(w["start"]), 3), "end": round(float(w["end"]), 3),
                  "probability": round(float(w.get("probability", 0.0)), 4)}
                 for segment in result.get("segments", []) for w in segment.get("words", [])]
        return {"text": result.get("text", "").strip(), "words": words}

    def _store(self, ident: str, found: dict) -> None:
        self.entries[ident] = found
        if self.cache_file is None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"id": ident, **found}, ensure_ascii=False) + "\n")
            handle.flush()
