"""A long multi-speaker recording made from a corpus's utterances, with its reference timelines.

For evaluating the long-form pipeline where no annotated long recordings exist: utterances of
a few speakers (from a test fold, so the model never saw them) are laid end to end in turns of
1-3 utterances per speaker, with short pauses inside a turn and longer ones between turns. The
generator writes the recording, the reference speaker turns and emotion spans (RTTM), and a
manifest of the reference segments with their transcripts, which ``mmemo predict`` scores as
the upper bound (reference segments, reference text).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile

from mmemo.data.audio import SAMPLE_RATE, load_audio
from mmemo.data.manifest import read_manifest, resolve_audio_paths
from mmemo.errors import InvalidInput
from mmemo.longform.rttm import emotion_line, speaker_line, write_rttm


def make_long_recording(manifest: str | Path, out: str | Path, *, speakers: int = 3, seconds: float = 120.0,
                        seed: int = 0, audio_root: str | Path | None = None, name: str = "recording") -> dict:
    """Write ``<name>.wav``, ``<name>.rttm`` (SPEAKER + EMOTION lines) and ``<name>.reference.jsonl``."""
    from mmemo.data.folds import audio_root_of, corpus_root_of

    manifest, out = Path(manifest), Path(out)
    utterances = read_manifest(manifest)
    resolve_audio_paths(utterances, audio_root_of(corpus_root_of(manifest), audio_root))
    by_speaker: dict[str, list] = defaultdict(list)
    for u in utterances:
        if u.speaker and u.audio_path is not None:
            by_speaker[u.speaker].append(u)
    if len(by_speaker) < speakers:
        raise InvalidInput(f"{manifest}: {len(by_speaker)} speakers with audio, {speakers} asked for")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(sorted(by_speaker), speakers))
    for name_ in chosen:
        rng.shuffle(by_speaker[name_])
    out.mkdir(parents=True, exist_ok=True)
    pieces: list[np.ndarray] = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)]
    cursor, previous = 0.5, None
    speaker_lines, emotion_lines, reference = [], [], []
    while cursor < seconds and any(by_speaker[s] for s in chosen):
        speaker = rng.choice([s for s in chosen if s != previous and by_speaker[s]] or
                             [s for s in chosen if by_speaker[s]])
        turn_start = cursor
        for index in range(rng.randint(1, 3)):
            if not by_speaker[speaker]:
                break
            u = by_speaker[speaker].pop()
            if index:
                gap = rng.uniform(0.4, 0.7)
                pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
                cursor += gap
            wave = load_audio(u.audio_path, key=u.key, start=u.start, end=u.end).wave
            start, cursor = cursor, cursor + len(wave) / SAMPLE_RATE
            pieces.append(wave)
            emotion_lines.append(emotion_line(name, start, cursor, u.emo, speaker))
            reference.append({"key": f"{name}:{len(reference):04d}", "wav": f"{name}.wav", "emo": u.emo,
                              "speaker": speaker, "text": u.text, "start": round(start, 4), "end": round(cursor, 4),
                              "source": u.key})
        speaker_lines.append(speaker_line(name, turn_start, cursor, speaker))
        gap = rng.uniform(0.8, 1.6)
        pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
        cursor += gap
        previous = speaker
    wav = out / f"{name}.wav"
    soundfile.write(wav, np.concatenate(pieces), SAMPLE_RATE, subtype="PCM_16")
    rttm = write_rttm(out / f"{name}.rttm", speaker_lines + emotion_lines)
    lines = out / f"{name}.reference.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in reference), encoding="utf-8")
    return {"wav": wav, "rttm": rttm, "reference": lines, "seconds": round(cursor, 3), "speakers": chosen,
            "utterances": len(reference)}
