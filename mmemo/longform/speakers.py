"""Who speaks when: speaker embeddings over the speech segments, clustered into speakers.

:class:`Diarizer` is the interface (speech segments in, speaker turns out); the built-in
:class:`EmbeddingDiarizer` embeds sliding 1.6 s windows inside each VAD segment with Resemblyzer's
pretrained GE2E encoder (its package ships the weights), clusters them spectrally (the d-vector
recipe of Wang et al. 2018, with the auto-tuned graph of NME-SC) into a known or an estimated
number of speakers, and turns window labels into turns with a majority vote per 10 ms frame.
A pyannote-style pipeline fits the same interface.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from mmemo.data.audio import SAMPLE_RATE
from mmemo.errors import InvalidInput

#: The encoder's training length (160 mel frames of 10 ms).
WINDOW_SECONDS = 1.6
HOP_SECONDS = 0.4
#: Resolution of the turn boundaries.
FRAME_SECONDS = 0.01


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


class Diarizer(Protocol):
    name: str

    def diarize(self, wave_of, segments: list[tuple[float, float]], num_speakers: int | None = None) -> list[Turn]:
        """``wave_of(start, end)`` returns that segment's 16 kHz samples (called once per segment);
        turns lie inside ``segments``."""


class SpeakerEncoder:
    """Resemblyzer's voice encoder (3-layer LSTM over 40 mel bands, 256-d L2-normed output)."""

    name = "resemblyzer"

    def __init__(self, device: str = "cpu"):
        from resemblyzer import VoiceEncoder

        self.model = VoiceEncoder(device=device, verbose=False).eval()

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """One embedding per waveform ([N, 256]); windows of one length are batched together."""
        from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

        out = np.zeros((len(waves), 256), np.float32)
        mels = [wav_to_mel_spectrogram(normalize_volume(w.astype(np.float32), -30, increase_only=True)) for w in waves]
        by_length: dict[int, list[int]] = {}
        for index, mel in enumerate(mels):
            by_length.setdefault(len(mel), []).append(index)
        with torch.inference_mode():
            for members in by_length.values():
                for begin in range(0, len(members), 64):
                    chunk = members[begin: begin + 64]
                    batch = torch.from_numpy(np.stack([mels[i] for i in chunk])).to(self.model.device)
                    out[chunk] = self.model(batch).cpu().numpy()
        return out


def windows_of(segments: list[tuple[float, float]], window: float = WINDOW_SECONDS, hop: float = HOP_SECONDS
               ) -> list[tuple[float, float]]:
    """Sliding windows inside each segment; a segment shorter than a window is one window."""
    out = []
    for start, end in segments:
        if end - start <= window:
            out.append((start, end))
            continue
        count = int(np.ceil((end - start - window) / hop)) + 1
        for k in range(count):
            begin = min(start + k * hop, end - window)
            out.append((begin, begin + window))
    return out


def cluster(embeddings: np.ndarray, num_speakers: int | None, max_speakers: int = 8) -> np.ndarray:
    """Speaker index per embedding (0..K-1, numbered by first appearance): spectral clustering of the
    cosine-similarity graph pruned to each window's ``p`` nearest neighbours, ``p`` and the speaker
    count chosen together by the normalised maximum eigengap (NME-SC, Park et al. 2019), so no
    threshold is tuned per corpus. ``num_speakers`` fixes the count."""
    from sklearn.cluster import SpectralClustering

    count = len(embeddings)
    if num_speakers is not None and num_speakers < 1:
        raise InvalidInput(f"--num-speakers must be at least 1, got {num_speakers}")
    if count < 4 or num_speakers == 1:
        return np.zeros(count, int)
    similarity = embeddings @ embeddings.T
    order = np.argsort(-similarity, axis=1)
    best = None
    for neighbours in range(2, max(3, min(count // 2, 30)) + 1):
        graph = np.zeros_like(similarity)
        np.put_along_axis(graph, order[:, :neighbours], 1.0, axis=1)
        graph = (graph + graph.T) / 2
        degree = graph.sum(axis=1)
        laplacian = np.eye(count) - graph / np.sqrt(np.outer(degree, degree))
        values = np.linalg.eigvalsh(laplacian)
        gaps = np.diff(values[: min(max_speakers, count - 1) + 1])
        ratio = neighbours / (gaps.max() / max(values[-1], 1e-10) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, int(np.argmax(gaps)) + 1, graph)
    _, estimated, graph = best
    speakers = min(num_speakers or estimated, count)
    if speakers == 1:
        return np.zeros(count, int)
    with warnings.catch_warnings():  # a disconnected graph is well-separated speakers, not a problem
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        labels = SpectralClustering(speakers, affinity="precomputed", random_state=0).fit_predict(graph)
    rank = {label: r for r, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([rank[label] for label in labels.tolist()], int)


def turns_from_windows(segments: list[tuple[float, float]], windows: list[tuple[float, float]], labels: np.ndarray,
                       min_turn: float = 0.5) -> list[Turn]:
    """Each 10 ms frame of a segment takes the label most of its windows carry; runs become turns, and a
    run shorter than ``min_turn`` joins its longer neighbour (a speaker change needs evidence)."""
    turns: list[Turn] = []
    spans = np.array(windows, float).reshape(-1, 2)
    speakers = int(labels.max()) + 1 if len(labels) else 1
    for start, end in segments:
        frames = max(1, int(round((end - start) / FRAME_SECONDS)))
        centres = start + (np.arange(frames) + 0.5) * FRAME_SECONDS
        votes = np.zeros((frames, speakers))
        inside = np.flatnonzero((spans[:, 1] > start) & (spans[:, 0] < end))
        for w in inside:
            hit = (centres >= spans[w, 0]) & (centres < spans[w, 1])
            votes[hit, labels[w]] += 1
        if not len(inside):
            continue
        frame_labels = votes.argmax(axis=1)
        runs = _runs(frame_labels)
        runs = _absorb_short(runs, int(round(min_turn / FRAME_SECONDS)))
        for label, first, last in runs:
            turns.append(Turn(round(start + first * FRAME_SECONDS, 3), round(min(end, start + last * FRAME_SECONDS), 3),
                              f"SPEAKER_{label:02d}"))
    return turns


def _runs(labels: np.ndarray) -> list[list[int]]:
    runs: list[list[int]] = []
    for index, label in enumerate(labels.tolist()):
        if runs and runs[-1][0] == label:
            runs[-1][2] = index + 1
        else:
            runs.append([label, index, index + 1])
    return runs


def _absorb_short(runs: list[list[int]], shortest: int) -> list[list[int]]:
    changed = True
    while changed and len(runs) > 1:
        changed = False
        lengths = [r[2] - r[1] for r in runs]
        index = int(np.argmin(lengths))
        if lengths[index] >= shortest:
            break
        left = runs[index - 1] if index > 0 else None
        right = runs[index + 1] if index + 1 < len(runs) else None
        target = left if right is None or (left is not None and left[2] - left[1] >= right[2] - right[1]) else right
        if target is left:
            left[2] = runs[index][2]
        else:
            right[1] = runs[index][1]
        del runs[index]
        merged: list[list[int]] = []
        for run in runs:  # neighbours that now carry the same label become one run
            if merged and merged[-1][0] == run[0]:
                merged[-1][2] = run[2]
            else:
                merged.append(run)
        runs, changed = merged, True
    return runs


class EmbeddingDiarizer:
    """Resemblyzer embeddings of sliding windows + spectral clustering."""

    name = "resemblyzer"

    def __init__(self, encoder: SpeakerEncoder | None = None, *, max_speakers: int = 8, min_turn: float = 0.5):
        self.encoder = encoder or SpeakerEncoder()
        self.max_speakers, self.min_turn = max_speakers, min_turn

    def diarize(self, wave_of, segments: list[tuple[float, float]], num_speakers: int | None = None) -> list[Turn]:
        windows: list[tuple[float, float]] = []
        waves: list[np.ndarray] = []
        for start, end in segments:  # each segment decoded once, its windows sliced from it
            segment = wave_of(start, end)
            for begin, finish in windows_of([(start, end)]):
                windows.append((begin, finish))
                a = int(round((begin - start) * SAMPLE_RATE))
                waves.append(segment[a: a + int(round((finish - begin) * SAMPLE_RATE))])
        if not windows:
            return []
        keep = [i for i, w in enumerate(waves) if len(w) >= int(0.2 * SAMPLE_RATE)]  # too short to embed
        embeddings = self.encoder.embed([waves[i] for i in keep])
        labels = np.zeros(len(windows), int)
        labels[keep] = cluster(embeddings, num_speakers, self.max_speakers)
        return turns_from_windows(segments, [windows[i] for i in keep], labels[keep], self.min_turn)
