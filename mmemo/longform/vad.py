"""Voice activity: a long recording becomes speech segments (Silero VAD, the model its package ships).

The file is read block by block (:func:`~mmemo.data.audio.iter_audio_blocks`) and the model runs
on its 32 ms windows with its recurrent state carried across blocks, so memory holds one block
and two numbers per window (speech probability, energy) whatever the recording's length. Silero's
own hysteresis turns probabilities into segments (minimum speech / silence, padding); a segment
longer than ``max_segment`` (the emotion model's and Whisper's useful length) is then split at its
quietest window, so no cut falls in the middle of a word when a pause exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmemo.data.audio import SAMPLE_RATE, iter_audio_blocks
from mmemo.errors import InvalidInput

#: Silero's window at 16 kHz (32 ms).
WINDOW = 512


@dataclass(frozen=True)
class VadOptions:
    """Segmentation settings (``--vad-*`` on the command line); defaults follow Silero's, with a
    longer minimum silence so a breath inside a sentence does not split it."""

    threshold: float = 0.5
    min_speech: float = 0.25     # s: shorter bursts are dropped
    min_silence: float = 0.3     # s: shorter pauses do not end a segment
    padding: float = 0.1         # s added on each side (clipped to the neighbours and the file)
    max_segment: float = 20.0    # s: longer segments are split at their quietest point
    #: s added after each segment when it differs from ``padding`` (before): e.g. to match the silence
    #: margins of the clips a model was trained on (experiments/long_form)
    padding_after: float | None = None

    def __post_init__(self):
        checks = {"threshold": 0 < self.threshold < 1, "min_speech": self.min_speech >= 0,
                  "min_silence": self.min_silence >= 0, "padding": self.padding >= 0,
                  "max_segment": self.max_segment >= 1.0,
                  "padding_after": self.padding_after is None or self.padding_after >= 0}
        for name, ok in checks.items():
            value = getattr(self, name)
            if name == "padding_after" and value is None:
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
                raise InvalidInput(f"VAD option {name}={value!r} is out of range "
                                   "(threshold in (0, 1), durations >= 0 s, max_segment >= 1 s)")


@dataclass
class VoiceActivity:
    """What the VAD saw: one probability and one RMS energy per 32 ms window, and the file's length."""

    probs: np.ndarray
    energy: np.ndarray
    seconds: float

    @property
    def window_seconds(self) -> float:
        return WINDOW / SAMPLE_RATE


def silero():
    """The ``silero_vad`` module, imported without its side effect: importing it calls
    ``torch.set_num_threads(1)`` for the whole process, which would leave Whisper and the emotion
    model on one core."""
    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


class SileroVad:
    """The Silero VAD network (JIT, from the ``silero-vad`` package), one instance per thread."""

    name = "silero"

    def __init__(self, options: VadOptions | None = None):
        self.options = options or VadOptions()
        self.model = silero().load_silero_vad(onnx=False)
        self.model.eval()

    def activity(self, path: str | Path, *, key: str | None = None, block_seconds: float = 60.0) -> VoiceActivity:
        """Speech probability per window over the whole file, read block by block."""
        self.model.reset_states()
        probs: list[np.ndarray] = []
        energy: list[np.ndarray] = []
        pending = np.zeros(0, np.float32)
        samples = 0
        with torch.inference_mode():
            for block in iter_audio_blocks(path, block_seconds=block_seconds, key=key):
                samples += len(block)
                pending = np.concatenate([pending, block])
                usable = len(pending) - len(pending) % WINDOW
                if usable:
                    self._score(pending[:usable], probs, energy)
                    pending = pending[usable:]
            if len(pending):
                self._score(np.pad(pending, (0, WINDOW - len(pending))), probs, energy)
        return VoiceActivity(np.concatenate(probs) if probs else np.zeros(0, np.float32),
                             np.concatenate(energy) if energy else np.zeros(0, np.float32), samples / SAMPLE_RATE)

    def _score(self, wave: np.ndarray, probs: list, energy: list) -> None:
        windows = wave.reshape(-1, WINDOW)
        energy.append(np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1)).astype(np.float32))
        tensor = torch.from_numpy(np.ascontiguousarray(windows))
        probs.append(np.array([float(self.model(tensor[i: i + 1], SAMPLE_RATE)) for i in range(len(windows))],
                              dtype=np.float32))

    def segments(self, path: str | Path, *, key: str | None = None) -> list[tuple[float, float]]:
        """Speech segments ``(start, end)`` in seconds, in order, none longer than ``max_segment``."""
        return segments_of(self.activity(path, key=key), self.options)


def segments_of(activity: VoiceActivity, options: VadOptions) -> list[tuple[float, float]]:
    """Silero's hysteresis over the probabilities, then long segments split at low energy."""
    get_speech_timestamps_from_probs = silero().get_speech_timestamps_from_probs
    if not len(activity.probs):
        return []
    asymmetric = options.padding_after is not None and options.padding_after != options.padding
    found = get_speech_timestamps_from_probs(
        activity.probs.tolist(), sampling_rate=SAMPLE_RATE, threshold=options.threshold,
        min_speech_duration_ms=int(options.min_speech * 1000), min_silence_duration_ms=int(options.min_silence * 1000),
        speech_pad_ms=0 if asymmetric else int(options.padding * 1000),
        audio_length_samples=int(round(activity.seconds * SAMPLE_RATE)), return_seconds=False)
    spans = [(f["start"] / SAMPLE_RATE, min(f["end"] / SAMPLE_RATE, activity.seconds)) for f in found]
    if asymmetric:
        spans = pad_spans(spans, options.padding, options.padding_after, activity.seconds)
    out: list[tuple[float, float]] = []
    for start, end in spans:
        out += split_long(start, end, activity.energy, activity.window_seconds, options.max_segment)
    return [(round(s, 3), round(e, 3)) for s, e in out if e > s]


def pad_spans(spans: list[tuple[float, float]], before: float, after: float, total: float
              ) -> list[tuple[float, float]]:
    """Extend each span by ``before``/``after`` seconds; a pause shorter than both is shared between
    its two neighbours in that proportion, so padded segments never overlap."""
    out = [list(span) for span in spans]
    for i, span in enumerate(out):
        previous_end = spans[i - 1][1] if i else 0.0
        next_start = spans[i + 1][0] if i + 1 < len(spans) else total
        gap_before = spans[i][0] - previous_end
        gap_after = next_start - spans[i][1]
        share = before / (before + after) if before + after > 0 else 0.5
        span[0] = spans[i][0] - (min(before, gap_before * share) if i else min(before, gap_before))
        span[1] = spans[i][1] + (min(after, gap_after * (1 - share)) if i + 1 < len(spans) else min(after, gap_after))
    return [(max(0.0, a), min(total, b)) for a, b in out]


def split_long(start: float, end: float, energy: np.ndarray, window: float, limit: float) -> list[tuple[float, float]]:
    """Cut ``[start, end)`` into pieces of at most ``limit`` s, each cut at the quietest window of the
    last half of the allowed span (so pieces stay at least half the limit long)."""
    pieces = []
    while end - start > limit:
        lo, hi = int((start + limit / 2) / window), int((start + limit) / window)
        hi = min(hi, len(energy))
        if hi <= lo:
            cut = start + limit
        else:
            cut = (lo + int(np.argmin(energy[lo:hi])) + 0.5) * window
            cut = min(max(cut, start + window), start + limit)
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


class StreamSegmenter:
    """Speech segments of a live stream as they close: samples in, ``(start, end, wave)`` out.

    The same Silero model and settings as :func:`segments_of`, run causally: a segment opens when
    a window's probability reaches ``threshold`` and closes after ``min_silence`` below
    ``threshold - 0.15`` (or at ``max_segment``, cut at its quietest window). Only the open
    segment's audio is held, so memory stays bounded by ``max_segment`` however long the stream.
    """

    def __init__(self, options: VadOptions | None = None, vad: SileroVad | None = None):
        self.vad = vad or SileroVad(options)
        self.options = self.vad.options
        self.vad.model.reset_states()
        self.pending = np.zeros(0, np.float32)
        self.window = 0                    # windows seen
        self.held = np.zeros(0, np.float32)  # audio from the open segment's start (incl. padding)
        self.held_from = 0                 # sample index of held[0]
        self.energy: list[float] = []
        self.start: int | None = None      # window index where speech began
        self.quiet = 0                     # consecutive windows under the negative threshold
        pad = int(self.options.padding * SAMPLE_RATE)
        self.history = np.zeros(pad, np.float32)  # the padding before a segment opens

    def push(self, samples: np.ndarray) -> list[tuple[float, float, np.ndarray]]:
        self.pending = np.concatenate([self.pending, np.asarray(samples, np.float32)])
        closed = []
        with torch.inference_mode():
            while len(self.pending) >= WINDOW:
                chunk, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
                closed += self._step(chunk)
        return closed

    def finish(self) -> list[tuple[float, float, np.ndarray]]:
        out = []
        if len(self.pending):
            extra = WINDOW - len(self.pending)
            with torch.inference_mode():
                out += self._step(np.pad(self.pending, (0, extra)))
            if self.start is not None and extra:  # the model saw zeros after the end; the segment does not
                self.held = self.held[:-extra]
            self.pending = np.zeros(0, np.float32)
        if self.start is not None:
            out += self._close(self.window)
        return out

    def _step(self, chunk: np.ndarray) -> list:
        o = self.options
        prob = float(self.vad.model(torch.from_numpy(np.ascontiguousarray(chunk))[None], SAMPLE_RATE))
        index, self.window = self.window, self.window + 1
        out = []
        if self.start is None:
            if prob >= o.threshold:
                self.start, self.quiet = index, 0
                self.held_from = index * WINDOW - len(self.history)
                self.held, self.energy = np.concatenate([self.history, chunk]), [float(np.sqrt(np.mean(chunk ** 2)))]
            else:
                keep = len(self.history)
                if keep:
                    self.history = np.concatenate([self.history, chunk])[-keep:]
            return out
        self.held = np.concatenate([self.held, chunk])
        self.energy.append(float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))))
        self.quiet = self.quiet + 1 if prob < max(o.threshold - 0.15, 0.01) else 0
        window_s = WINDOW / SAMPLE_RATE
        if self.quiet * window_s >= o.min_silence:
            out += self._close(index + 1 - self.quiet)
        elif (index + 1 - self.start) * window_s >= o.max_segment:
            half = len(self.energy) // 2
            cut = self.start + half + int(np.argmin(self.energy[half:]))
            out += self._close(cut, reopen=True)
        return out

    def _close(self, end_window: int, reopen: bool = False) -> list:
        o = self.options
        # padding after a segment is at most the silence that closed it (the stream cannot wait longer)
        pad = int((o.padding if o.padding_after is None else o.padding_after) * SAMPLE_RATE)
        end_sample = min(end_window * WINDOW + (0 if reopen else pad), self.held_from + len(self.held))
        wave = self.held[: max(0, end_sample - self.held_from)]
        start_s, end_s = max(0, self.held_from) / SAMPLE_RATE, end_sample / SAMPLE_RATE
        rest = self.held[max(0, end_sample - self.held_from):]
        keep_energy = self.energy[end_window - self.start:] if reopen else []
        self.start, self.quiet = (end_window, 0) if reopen else (None, 0)
        if reopen:
            self.held_from, self.held, self.energy = end_sample, rest, keep_energy
        else:
            self.held, self.energy = np.zeros(0, np.float32), []
            if len(self.history):
                self.history = np.concatenate([np.zeros(len(self.history), np.float32), rest])[-len(self.history):]
        if end_s - start_s < o.min_speech:
            return []
        return [(round(start_s, 3), round(end_s, 3), wave)]
