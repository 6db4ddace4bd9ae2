"""``mmemo eval long-form``: the long-form pipeline scored against annotated recordings.

Each recording is an audio file with an RTTM beside it (same stem): ``EMOTION`` lines are the
reference emotion timeline, ``SPEAKER`` lines (optional) the reference speaker turns. Either a
model is run (``--model``, with ``--diarize``/``--asr`` as in ``mmemo predict --segments vad``),
or existing hypothesis RTTM files are scored (``--hypothesis DIR``: ``<stem>.rttm`` as
``mmemo predict --out`` writes them). Reports per recording and overall (time-weighted for
EDER/DER, pooled segments for UA): EDER, frame F1, segment UA/WA/macro-F1, and DER.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmemo.errors import InvalidInput
from mmemo.evaluation.timelines import diarization_error, emotion_diarization_error, segment_scores
from mmemo.longform.rttm import read_rttm


def score_recording(reference_rttm: Path, hypothesis: list[tuple[float, float, str]],
                    speakers: list[tuple[float, float, str]] | None, classes: list[str]) -> dict:
    emotions = [(s.start, s.end, s.label) for s in read_rttm(reference_rttm, "EMOTION")]
    if not emotions:
        raise InvalidInput(f"{reference_rttm}: no EMOTION lines (the reference emotion timeline)")
    unknown = {label for *_, label in emotions + hypothesis} - set(classes)
    if unknown:
        raise InvalidInput(f"{reference_rttm}: emotions {sorted(unknown)} are not among the classes {classes}")
    row = {"recording": reference_rttm.stem, **{k: v for k, v in emotion_diarization_error(
        emotions, hypothesis, classes).items() if k != "classes"}}
    row["segment"] = segment_scores(emotions, hypothesis, classes)
    turns = [(s.start, s.end, s.label) for s in read_rttm(reference_rttm, "SPEAKER")]
    if turns and speakers:
        row["DER"] = diarization_error(turns, speakers)["DER"]
        row["DER_collar_0.25"] = diarization_error(turns, speakers, collar=0.25)["DER"]
    return row


def evaluate_long_form(data: list[str | Path], *, model: str | None = None, hypothesis: str | Path | None = None,
                       classes: list[str] | None = None, diarize: bool = False, num_speakers: int | None = None,
                       asr: str | None = None, device: str = "cpu",
                       padding: tuple[float, float | None] = (0.1, None)) -> dict:
    from mmemo.monitor.backtest import find_recordings

    pairs = find_recordings(data)
    if (model is None) == (hypothesis is None):
        raise InvalidInput("give --model (run the pipeline) or --hypothesis DIR (score its RTTM files), not both")
    pipeline = None
    if model is not None:
        from mmemo.inference.predictor import Predictor
        from mmemo.longform.pipeline import LongFormOptions, LongFormPipeline

        predictor = Predictor.from_source(model, device)
        classes = list(predictor.classes)
        from mmemo.longform.vad import VadOptions

        vad = VadOptions(padding=padding[0], padding_after=padding[1])
        pipeline = LongFormPipeline(predictor, LongFormOptions(vad=vad, diarize=diarize, num_speakers=num_speakers,
                                                               asr=asr, granularity="utterance"))
    rows, pooled_ref, pooled_hyp = [], [], []
    offset = 0.0
    for audio, rttm in pairs:
        if pipeline is not None:
            result = pipeline.run(audio)
            hyp = [(s.start, s.end, s.label) for s in result.segments if s.label]
            spk = [(s.start, s.end, s.speaker) for s in result.segments if s.speaker]
        else:
            path = Path(hypothesis) / f"{rttm.stem}.rttm"
            hyp = [(s.start, s.end, s.label) for s in read_rttm(path, "EMOTION")]
            spk = [(s.start, s.end, s.label) for s in read_rttm(path, "SPEAKER")]
            if classes is None:
                refs = [s.label for s in read_rttm(rttm, "EMOTION")]
                classes = sorted(set(refs) | {h[2] for h in hyp})
        rows.append(score_recording(rttm, hyp, spk, classes))
        # pooled: recordings laid end to end on one time axis
        ref = [(s.start, s.end, s.label) for s in read_rttm(rttm, "EMOTION")]
        pooled_ref += [(a + offset, b + offset, lab) for a, b, lab in ref]
        pooled_hyp += [(a + offset, b + offset, lab) for a, b, lab in hyp]
        offset += max([b for _, b, _ in ref + hyp], default=0.0) + 1.0
    overall = {k: v for k, v in emotion_diarization_error(pooled_ref, pooled_hyp, classes).items() if k != "classes"}
    overall["segment"] = segment_scores(pooled_ref, pooled_hyp, classes)
    ders = [(r["DER"], r["reference_seconds"]) for r in rows if "DER" in r]
    if ders:
        overall["DER"] = sum(d * w for d, w in ders) / sum(w for _, w in ders)
    return {"classes": classes, "recordings": rows, "overall": overall}


def render(report: dict) -> str:
    def pct(value):
        return "–" if value is None or value != value else f"{100 * value:.1f}"

    lines = ["| recording | EDER % | frame F1 % | segment UA % | WA % | macro-F1 % | DER % |",
             "|---|---|---|---|---|---|---|"]
    for row in report["recordings"] + [{"recording": "**all**", **report["overall"]}]:
        seg = row["segment"]
        lines.append(f"| {row['recording']} | {pct(row['EDER'])} | {pct(row['frame_F1'])} | {pct(seg['UA'])} | "
                     f"{pct(seg['WA'])} | {pct(seg['macro_F1'])} | {pct(row.get('DER'))} |")
    return "\n".join(lines)


def write(report: dict, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return out
