"""Metrics for timelines of long recordings: who spoke when, and which emotion when.

All are computed on a 10 ms frame grid from spans (start, end, label):

* **DER** (diarization error rate, NIST): (missed speech + false alarm + speaker confusion) / reference
  speech, after the one-to-one speaker mapping that maximises overlap (Hungarian). Overlapped
  reference speech counts once per speaker. An optional ``collar`` (s) ignores frames that close to a
  reference boundary, as NIST scoring does.
* **EDER** (emotion diarization error rate, as in Wang et al. 2023 / SpeechBrain's ZED recipe): the same
  three errors with emotion labels compared as they are (no mapping: the label set is shared),
  over the reference's labelled time.
* **frame F1**: macro F1 over classes of frame labels where both sides have a label.
* **segment UA/WA/F1**: each reference segment gets the hypothesis label covering most of it
  (none: a miss, counted wrong), then the usual utterance metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FRAME = 0.01
NONE = -1


def _grid(spans, labels: dict[str, int], frames: int) -> np.ndarray:
    """[frames, L] occupancy of each label."""
    grid = np.zeros((frames, max(1, len(labels))), bool)
    for start, end, label in spans:
        a, b = int(round(start / FRAME)), int(round(end / FRAME))
        grid[max(0, a): max(0, min(frames, b)), labels[label]] = True
    return grid


def _frames(*span_lists) -> int:
    ends = [end for spans in span_lists for _, end, _ in spans]
    return int(round(max(ends, default=0.0) / FRAME)) + 1


def _collar_mask(reference, frames: int, collar: float) -> np.ndarray:
    keep = np.ones(frames, bool)
    if collar > 0:
        width = int(round(collar / FRAME))
        for start, end, _ in reference:
            for edge in (int(round(start / FRAME)), int(round(end / FRAME))):
                keep[max(0, edge - width): edge + width] = False
    return keep


def diarization_error(reference: Sequence[tuple[float, float, str]], hypothesis: Sequence[tuple[float, float, str]],
                      *, collar: float = 0.0) -> dict:
    """DER and its parts (fractions of scored reference speech) with the optimal speaker mapping."""
    from scipy.optimize import linear_sum_assignment

    ref_labels = {s: i for i, s in enumerate(dict.fromkeys(lab for *_, lab in reference))}
    hyp_labels = {s: i for i, s in enumerate(dict.fromkeys(lab for *_, lab in hypothesis))}
    frames = _frames(reference, hypothesis)
    keep = _collar_mask(reference, frames, collar)
    ref = _grid(reference, ref_labels, frames)[keep]
    hyp = _grid(hypothesis, hyp_labels, frames)[keep]
    overlap = ref.T.astype(np.int64) @ hyp.astype(np.int64)  # [R, H] frames both active
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
    mapping = {int(h): int(r) for r, h in zip(rows, cols)}
    n_ref, n_hyp = ref.sum(axis=1), hyp.sum(axis=1)
    correct = np.zeros(len(ref), np.int64)
    for h, r in mapping.items():
        correct += ref[:, r] & hyp[:, h]
    total = int(n_ref.sum())
    missed = int(np.maximum(0, n_ref - n_hyp).sum())
    false_alarm = int(np.maximum(0, n_hyp - n_ref).sum())
    confusion = int((np.minimum(n_ref, n_hyp) - correct).sum())
    inverse = {h: r for h, r in mapping.items()}
    names_ref, names_hyp = list(ref_labels), list(hyp_labels)
    return {"DER": (missed + false_alarm + confusion) / total if total else float("nan"),
            "missed": missed / total if total else 0.0, "false_alarm": false_alarm / total if total else 0.0,
            "confusion": confusion / total if total else 0.0, "reference_seconds": total * FRAME,
            "collar": collar, "mapping": {names_hyp[h]: names_ref[r] for h, r in inverse.items()},
            "speakers": {"reference": len(ref_labels), "hypothesis": len(hyp_labels)}}


def _label_frames(spans, classes: dict[str, int], frames: int) -> np.ndarray:
    out = np.full(frames, NONE, np.int64)
    for start, end, label in sorted(spans, key=lambda s: s[0]):
        out[int(round(start / FRAME)): int(round(end / FRAME))] = classes[label]
    return out


def emotion_diarization_error(reference, hypothesis, classes: Sequence[str] | None = None) -> dict:
    """EDER over the reference's labelled time, with frame F1 and its parts."""
    names = list(classes) if classes else list(dict.fromkeys([s[2] for s in reference] + [s[2] for s in hypothesis]))
    index = {name: i for i, name in enumerate(names)}
    unknown = {s[2] for s in list(reference) + list(hypothesis)} - set(index)
    if unknown:
        from mmemo.errors import InvalidInput

        raise InvalidInput(f"emotion labels {sorted(unknown)} are not among the classes {names}")
    frames = _frames(reference, hypothesis)
    ref, hyp = _label_frames(reference, index, frames), _label_frames(hypothesis, index, frames)
    labelled = ref != NONE
    total = int(labelled.sum())
    missed = int((labelled & (hyp == NONE)).sum())
    false_alarm = int((~labelled & (hyp != NONE)).sum())
    both = labelled & (hyp != NONE)
    confusion = int((both & (ref != hyp)).sum())
    f1 = []
    for c in range(len(names)):
        tp = int((both & (ref == c) & (hyp == c)).sum())
        fp = int((both & (ref != c) & (hyp == c)).sum())
        fn = int((both & (ref == c) & (hyp != c)).sum())
        if tp + fp + fn:
            f1.append(2 * tp / (2 * tp + fp + fn))
    return {"EDER": (missed + false_alarm + confusion) / total if total else float("nan"),
            "missed": missed / total if total else 0.0, "false_alarm": false_alarm / total if total else 0.0,
            "confusion": confusion / total if total else 0.0, "frame_F1": float(np.mean(f1)) if f1 else float("nan"),
            "frame_accuracy": int((both & (ref == hyp)).sum()) / int(both.sum()) if both.any() else float("nan"),
            "reference_seconds": total * FRAME, "classes": names}


def segment_scores(reference, hypothesis, classes: Sequence[str]) -> dict:
    """UA/WA/F1 of reference segments labelled by the hypothesis label covering most of each."""
    from mmemo.evaluation.metrics import compute_metrics

    index = {name: i for i, name in enumerate(classes)}
    frames = _frames(reference, hypothesis)
    hyp = _label_frames(hypothesis, index, frames)
    predictions, targets, missed = [], [], 0
    for start, end, label in reference:
        window = hyp[int(round(start / FRAME)): max(int(round(start / FRAME)) + 1, int(round(end / FRAME)))]
        counts = np.bincount(window[window != NONE], minlength=len(classes))
        if counts.sum() == 0:
            missed += 1
            guess = (index[label] + 1) % len(classes)  # no label there: a miss is an error
        else:
            guess = int(counts.argmax())
        predictions.append(guess)
        targets.append(index[label])
    scores = compute_metrics(predictions, targets, list(classes))
    return {**scores, "segments": len(reference), "missed_segments": missed}
