"""``mmemo monitor backtest``: replay annotated recordings through the alert engine and score the rules.

Each recording is cut into speech segments and scored frame by frame exactly as the long-form
pipeline does (``mmemo predict --segments vad``; Whisper per segment with ``--asr`` for a text
branch); every segment's frames go through the monitor's own :class:`AlertEngine` (one rule at a
time, cooldowns included). A rule's **events** are the reference's spans of its emotions (merged
across gaps shorter than ``merge_gap``) lasting at least the rule's ``duration``. An alert is a
hit when it fires inside an event (or up to ``tolerance`` s after it ends); each event counts
once. Precision = hits / alerts, recall = detected events / events, latency = firing time minus
event start. ``--sweep threshold=0.5:0.95:0.05`` repeats it over a grid (frames are scored
once) and plots the trade-off, so thresholds are chosen on data.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mmemo.errors import InvalidInput
from mmemo.monitor.engine import AlertEngine
from mmemo.monitor.rules import Rule, RuleSet, load_rules

log = logging.getLogger(__name__)

SWEEPABLE = ("threshold", "duration")


@dataclass
class Recording:
    """An annotated recording: audio, reference emotion spans, and its scored frames per segment."""

    audio: Path
    reference: list[tuple[float, float, str]]
    segments: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (times [T], probs [T, C])


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``threshold=0.5:0.95:0.05`` (start:stop:step, stop included) or ``duration=1,2,3``."""
    name, _, values = text.partition("=")
    name = name.strip()
    if name not in SWEEPABLE or not values:
        raise InvalidInput(f"--sweep {text!r}: expected NAME=START:STOP:STEP or NAME=V1,V2,... "
                           f"with NAME one of {', '.join(SWEEPABLE)}")
    try:
        if ":" in values:
            start, stop, step = (float(v) for v in values.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            grid = [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
        else:
            grid = [float(v) for v in values.split(",")]
    except ValueError:
        raise InvalidInput(f"--sweep {text!r}: START:STOP:STEP needs numbers with STEP > 0 and STOP >= START") from None
    if name == "threshold" and not all(0 < v <= 1 for v in grid):
        raise InvalidInput(f"--sweep {text!r}: thresholds lie in (0, 1]")
    if name == "duration" and not all(v >= 0 for v in grid):
        raise InvalidInput(f"--sweep {text!r}: durations are >= 0 s")
    return name, grid


def find_recordings(paths: list[str | Path]) -> list[tuple[Path, Path]]:
    """(audio, rttm) pairs: an RTTM file names its audio by stem (same folder, any audio suffix);
    a folder is searched for RTTM files."""
    from mmemo.data.audio import MEDIA_SUFFIXES

    rttms: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            rttms += sorted(given.rglob("*.rttm"))
        elif given.suffix.lower() == ".rttm":
            rttms.append(given)
        elif given.is_file():
            rttms.append(given.with_suffix(".rttm"))
        else:
            raise InvalidInput(f"{given}: no such file or folder")
    pairs = []
    for rttm in rttms:
        if not rttm.is_file():
            raise InvalidInput(f"{rttm}: the reference RTTM (EMOTION lines) for this recording is missing")
        audio = next((rttm.with_suffix(s) for s in MEDIA_SUFFIXES if rttm.with_suffix(s).is_file()), None)
        if audio is None:
            raise InvalidInput(f"{rttm}: no audio beside it ({rttm.stem} with one of {', '.join(MEDIA_SUFFIXES)})")
        pairs.append((audio, rttm))
    if not pairs:
        raise InvalidInput(f"no annotated recordings (RTTM files) in {', '.join(map(str, paths))}")
    return pairs


def score_recordings(pairs, pipeline, classes: list[str]) -> list[Recording]:
    """Frames of every speech segment of every recording (scored once, reused by every sweep point)."""
    from mmemo.longform.rttm import read_rttm

    recordings = []
    for audio, rttm in pairs:
        reference = [(s.start, s.end, s.label) for s in read_rttm(rttm, "EMOTION")]
        unknown = {label for *_, label in reference} - set(classes)
        if unknown:
            raise InvalidInput(f"{rttm}: emotions {sorted(unknown)} are not classes of the model "
                               f"({', '.join(classes)})")
        result = pipeline.run(audio)
        recording = Recording(audio, reference)
        for segment in result.segments:
            if segment.timeline is not None:
                times = np.asarray(segment.timeline["times"], float)
                probs = np.asarray(segment.timeline["scores"], float)
            elif segment.scores:  # an utterance-level model: its segment score held over the segment
                times = np.arange(segment.start + 0.01, segment.end, 0.02)
                probs = np.tile([segment.scores[c] for c in classes], (len(times), 1))
            else:
                continue
            recording.segments.append((times, probs))
        recordings.append(recording)
    return recordings


def events_for(rule: Rule, reference, merge_gap: float) -> list[tuple[float, float]]:
    spans = sorted((s, e) for s, e, label in reference if label in rule.emotions)
    merged: list[list[float]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] <= merge_gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged if e - s >= rule.duration]


def evaluate_rule(rule: Rule, recordings: list[Recording], classes: list[str], *, tolerance: float = 1.0,
                  merge_gap: float = 1.0) -> dict:
    alerts = events = hits = detected = 0
    latencies: list[float] = []
    for recording in recordings:
        engine = AlertEngine(RuleSet([rule]), classes)
        fired: list[float] = []
        for times, probs in recording.segments:
            if len(times) < 2:
                continue
            period = float(np.median(np.diff(times)))
            session = engine.session("backtest", str(recording.audio), period, start_time=0.0)
            fired += [a.end for a in session.feed(times, probs)]
        truth = events_for(rule, recording.reference, merge_gap)
        seen = [False] * len(truth)
        for moment in fired:
            match = next((i for i, (s, e) in enumerate(truth) if s <= moment <= e + tolerance), None)
            if match is not None:
                hits += 1
                if not seen[match]:
                    seen[match] = True
                    latencies.append(moment - truth[match][0])
        alerts += len(fired)
        events += len(truth)
        detected += sum(seen)
    precision = hits / alerts if alerts else float("nan")
    recall = detected / events if events else float("nan")
    f1 = (2 * precision * recall / (precision + recall)) if alerts and events and precision + recall > 0 else 0.0
    return {"rule": rule.name, "threshold": rule.threshold, "duration": rule.duration, "alerts": alerts,
            "events": events, "hits": hits, "detected": detected, "precision": precision, "recall": recall,
            "F1": f1, "latency_mean": float(np.mean(latencies)) if latencies else float("nan"),
            "latency_median": float(np.median(latencies)) if latencies else float("nan")}


def backtest(rules_path: str | Path, recordings: list[Recording], classes: list[str], *,
             sweep: tuple[str, list[float]] | None = None, tolerance: float = 1.0, merge_gap: float = 1.0
             ) -> list[dict]:
    ruleset = load_rules(rules_path, classes)
    if not ruleset.rules:
        raise InvalidInput(f"{rules_path}: no rules to backtest")
    mask = ruleset.mask(classes)
    if mask is not None:  # the file watches a subset of classes, as the service would
        recordings = [replace(r, segments=[(t, mask(p)) for t, p in r.segments]) for r in recordings]
    rows = []
    for rule in ruleset.rules:
        if sweep is None:
            rows.append({**evaluate_rule(rule, recordings, classes, tolerance=tolerance, merge_gap=merge_gap),
                         "swept": None})
            continue
        name, grid = sweep
        for value in grid:
            changed = replace(rule, **{name: value})
            rows.append({**evaluate_rule(changed, recordings, classes, tolerance=tolerance, merge_gap=merge_gap),
                         "swept": name})
    return rows


def write_report(rows: list[dict], out: str | Path, sweep: tuple[str, list[float]] | None) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "backtest.json", out / "backtest.csv"]
    written[0].write_text(json.dumps(rows, indent=1, default=float) + "\n")
    with open(written[1], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if sweep is not None:
        written.append(plot_tradeoff(rows, sweep[0], out / "backtest_tradeoff.png"))
    return written


def plot_tradeoff(rows: list[dict], name: str, path: Path) -> Path:
    """Precision and recall against the swept value, one panel per rule, and the P-R curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = list(dict.fromkeys(r["rule"] for r in rows))
    figure, axes = plt.subplots(1, len(rules) + 1, figsize=(4.2 * (len(rules) + 1), 3.6), squeeze=False)
    for axis, rule in zip(axes[0], rules):
        mine = [r for r in rows if r["rule"] == rule]
        values = [r[name] for r in mine]
        axis.plot(values, [r["precision"] for r in mine], "o-", label="precision")
        axis.plot(values, [r["recall"] for r in mine], "s-", label="recall")
        axis.plot(values, [r["F1"] for r in mine], "^--", label="F1", alpha=0.7)
        axis.set_title(f"{rule} ({mine[0]['events']} events)")
        axis.set_xlabel(name)
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    curve = axes[0][-1]
    for rule in rules:
        mine = [r for r in rows if r["rule"] == rule and r["alerts"]]
        curve.plot([r["recall"] for r in mine], [r["precision"] for r in mine], "o-", label=rule)
    curve.set_xlabel("recall")
    curve.set_ylabel("precision")
    curve.set_title("precision-recall over the sweep")
    curve.set_xlim(-0.02, 1.02)
    curve.set_ylim(-0.02, 1.02)
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def render(rows: list[dict]) -> str:
    def pct(value):
        return "–" if value != value else f"{100 * value:.1f}"

    def sec(value):
        return "–" if value != value else f"{value:.2f}"

    lines = ["| rule | threshold | duration s | events | alerts | precision % | recall % | F1 % | latency s (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['rule']} | {r['threshold']:g} | {r['duration']:g} | {r['events']} | {r['alerts']} | "
                     f"{pct(r['precision'])} | {pct(r['recall'])} | {pct(r['F1'])} | {sec(r['latency_median'])} |")
    return "\n".join(lines)
