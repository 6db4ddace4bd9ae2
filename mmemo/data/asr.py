"""ASR → text cascade (``data.text_source=asr``): Whisper transcribes each utterance once.

When a corpus has no transcripts, or the user wants the text branch to see what
a deployed system would see, the text comes from Whisper instead of the manifest.
Transcripts are cached under ``<cache_dir>/<model fingerprint>-<language>/``, one
jsonl line per utterance keyed by the audio's content hash (and segment), so:

* each utterance is transcribed once per model, across folds, seeds and sweeps;
* another checkpoint (even under the same file name) never reuses them;
* a crash loses at most the batch in flight (lines are flushed as they are written).

Decoding follows Whisper's own condition (each clip padded to its 30 s window,
greedy, no timestamps), so the transcripts match ``whisper.transcribe`` on short
clips. Any Whisper format the encoder accepts works for ``data.asr.path``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mmemo.data.audio import load_audio
from mmemo.data.leakage import audio_digest
from mmemo.data.manifest import Utterance
from mmemo.errors import InvalidInput

log = logging.getLogger(__name__)

#: ``data.asr`` options and their defaults.
ASR_DEFAULTS = {
    "path": None,                    # any Whisper checkpoint: name, .pt, Hugging Face or CTranslate2 folder
    "language": "en",                # null: detect per clip (multilingual checkpoints)
    "batch_size": 8,
    "cache_dir": "cache/transcripts",
    "device": "auto",
}


@dataclass
class AsrReport:
    """What the cascade did, for the run's metadata (and the WER when references exist)."""

    model: str
    fingerprint: str
    language: str | None
    utterances: int = 0
    transcribed: int = 0
    reused: int = 0
    cache: str = ""
    wer: dict | None = None
    examples: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(vars(self))


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the model's dimensions and every weight: identifies *these* weights."""
    digest = hashlib.sha256(json.dumps(vars(model.dims), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def utterance_id(utterance: Utterance) -> str:
    """The cache key: audio content plus the segment (IEMOCAP-style shared files have several)."""
    return f"{audio_digest(utterance.audio_path)}:{utterance.start or 0}:{utterance.end or ''}"


class TranscriptCache:
    """An append-only jsonl of ``{"id", "key", "text"}`` in a folder named by model and language."""

    def __init__(self, root: str | os.PathLike, fingerprint: str, language: str | None):
        self.folder = Path(root) / f"{fingerprint}-{language or 'auto'}"
        self.file = self.folder / "transcripts.jsonl"
        self.entries: dict[str, str] = {}
        if self.file.is_file():
            for number, line in enumerate(self.file.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    record = json.loads(line)
                    self.entries[record["id"]] = record["text"]
                except (json.JSONDecodeError, KeyError):
                    log.warning("%s:%d: unreadable cache line ignored (an interrupted write)", self.file, number)

    def get(self, ident: str) -> str | None:
        return self.entries.get(ident)

    def add(self, records: list[tuple[str, str, str]]) -> None:
        """Append (id, key, text) records and flush them to disk."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.file, "a", encoding="utf-8") as handle:
            for ident, key, text in records:
                handle.write(json.dumps({"id": ident, "key": key, "text": text}, ensure_ascii=False) + "\n")
                self.entries[ident] = text
            handle.flush()
            os.fsync(handle.fileno())


def _decode_batch(model, waves: list[torch.Tensor], language: str | None) -> list[str]:
    import whisper

    mels = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(w), n_mels=model.dims.n_mels) for w in waves])
    options = whisper.DecodingOptions(language=language, without_timestamps=True, fp16=False)
    results = whisper.decode(model, mels.to(next(model.parameters()).device), options)
    return [r.text.strip() for r in results]


def transcribe_utterances(utterances: list[Utterance], *, path: str | None, language: str | None = "en",
                          batch_size: int = 8, cache_dir: str | os.PathLike = "cache/transcripts",
                          device: str = "auto", progress: bool = True) -> tuple[dict[str, str], AsrReport]:
    """ASR text for every utterance (by key), from the cache where possible.

    Utterances need resolved ``audio_path``. Returns ``{key: text}`` and a report.
    """
    from mmemo.encoders.whisper_checkpoints import load_whisper

    if not path:
        raise InvalidInput("data.text_source=asr needs data.asr.path: a Whisper model name, an openai-whisper .pt "
                         "file, a Hugging Face Whisper folder or a CTranslate2/faster-whisper folder")
    model = load_whisper(str(path))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    if not model.is_multilingual:
        if language not in (None, "en"):
            raise InvalidInput(f"data.asr.language={language!r}, but {path} is an English-only Whisper model")
        language = "en"
    fingerprint = weights_fingerprint(model)
    cache = TranscriptCache(cache_dir, fingerprint, language)
    report = AsrReport(model=str(path), fingerprint=fingerprint, language=language,
                       utterances=len(utterances), cache=str(cache.file))
    texts: dict[str, str] = {}
    todo: list[tuple[str, Utterance]] = []
    for utterance in utterances:
        ident = utterance_id(utterance)
        cached = cache.get(ident)
        if cached is None:
            todo.append((ident, utterance))
        else:
            texts[utterance.key] = cached
    report.reused = len(utterances) - len(todo)
    if todo:
        log.info("transcribing %d utterances with %s (%d cached) -> %s", len(todo), path, report.reused, cache.file)
    bar = tqdm(total=len(todo), desc="ASR transcripts", unit="clip", disable=not progress or not todo)
    for begin in range(0, len(todo), batch_size):
        chunk = todo[begin: begin + batch_size]
        waves = [torch.from_numpy(load_audio(u.audio_path, key=u.key, start=u.start, end=u.end,
                                             max_seconds=30.0).wave) for _, u in chunk]
        with torch.no_grad():
            hypotheses = _decode_batch(model, waves, language)
        cache.add([(ident, u.key, text) for (ident, u), text in zip(chunk, hypotheses)])
        for (_, u), text in zip(chunk, hypotheses):
            texts[u.key] = text
        bar.update(len(chunk))
    bar.close()
    report.transcribed = len(todo)
    return texts, report


def score_asr(utterances: list[Utterance], texts: dict[str, str], report: AsrReport) -> None:
    """Record in ``report`` the WER against the manifest transcripts there are (none: no WER)."""
    from mmemo.evaluation.wer import word_error_rate

    pairs = [(u.text.strip(), texts[u.key]) for u in utterances if (u.text or "").strip()]
    if pairs:
        references, hypotheses = zip(*pairs)
        report.wer = {**word_error_rate(list(references), list(hypotheses)), "utterances": len(pairs)}
        report.examples = [{"reference": r, "hypothesis": h} for r, h in pairs[:5]]


def with_asr_text(utterances: list[Utterance], texts: dict[str, str]) -> list[Utterance]:
    """Copies whose text is the ASR text; the manifest's text is kept as ``extra['reference_text']``."""
    import dataclasses

    return [dataclasses.replace(u, text=texts[u.key], extra={**u.extra, "reference_text": u.text}) for u in utterances]
