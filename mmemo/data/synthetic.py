"""The built-in demo corpus: a seeded, acted-style corpus spoken by espeak-ng.

No emotion corpus can be downloaded on the machines mmemo is developed on, so
the demo and the tests need one that is made locally, fast and identically on
every machine. It imitates an acted corpus such as IEMOCAP's 4-class subset:

* 4 classes (angry, happy, neutral, sad) and 10 speaker-voices in 5 sessions of
  one male and one female voice, written as leave-one-session-out folds in the
  EmoBox layout (train/test only, so validation is carved from training speakers);
* each class has a prosody *style* (rate, pitch, pitch range, loudness, pauses)
  drawn with jitter, and the styles overlap, so speech alone is informative but
  not perfect;
* the modalities are complementary, recorded per utterance in ``cue``:
  ``speech`` (a valence-ambiguous sentence; only prosody carries the label),
  ``text`` (an emotionally worded sentence in a neutralised delivery) and
  ``both``. A model needs both modalities to get the ``speech`` *and* ``text``
  shares right, which is what a fusion study wants to measure;
* every line records the prosody and wording it was made with, and the arousal (from the
  delivery) and valence (from the words) they imply (:mod:`mmemo.data.demo_dimensions`), so the
  same corpus serves dimensional runs (``task=dimensional``);
* with ``faces=True`` every utterance also gets a drawn talking face (``video``, an .mp4 with the
  audio; :mod:`mmemo.data.demo_faces`) and a fourth cue, ``face``: a valence-ambiguous sentence in
  a neutral delivery, the label shown by the face alone. Other cues show a neutral face.

The same seed gives byte-identical audio on machines with the same espeak-ng.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
from tqdm.auto import tqdm

from mmemo.data.demo_dimensions import DIMENSIONS, RULES, extras
from mmemo.data.demo_faces import expression, identity, render_video
from mmemo.data.demo_sentences import LABELS, ambiguous_sentence, emotional_sentence
from mmemo.data.folds import make_speaker_folds, write_folds
from mmemo.data.manifest import Utterance, write_manifest
from mmemo.errors import InvalidInput, MissingDependency

log = logging.getLogger(__name__)

#: 2: lines record the prosody and wording used and the arousal/valence they imply (demo_dimensions.py).
CORPUS_VERSION = 2
SAMPLE_RATE = 16_000
CUES = ("speech", "text", "both", "face")


@dataclass(frozen=True)
class Voice:
    speaker: str
    voice: str  # espeak-ng voice+variant
    gender: str
    pitch_offset: float  # added to the style's pitch (espeak 0-99 scale)
    rate_scale: float  # multiplies the style's words-per-minute


VOICES = (
    Voice("spk01", "en-us+m1", "M", -4, 1.00), Voice("spk02", "en-us+f1", "F", 2, 1.04),
    Voice("spk03", "en-gb+m3", "M", 0, 0.95), Voice("spk04", "en-gb+f2", "F", -2, 1.00),
    Voice("spk05", "en-us+m4", "M", 4, 1.06), Voice("spk06", "en-us+f3", "F", 0, 0.96),
    Voice("spk07", "en-gb-x-rp+m6", "M", -2, 1.02), Voice("spk08", "en-gb-x-rp+f4", "F", 4, 0.98),
    Voice("spk09", "en-gb-scotland+m2", "M", 2, 0.97), Voice("spk10", "en-us+f5", "F", -4, 1.03),
)


@dataclass(frozen=True)
class Style:
    """Mean and jitter (standard deviation) of each prosody control, in espeak-ng units."""

    rate: tuple[float, float]  # words per minute
    pitch: tuple[float, float]  # 0-99
    pitch_range: tuple[float, float]  # percent of the voice's default range
    amplitude: tuple[float, float]  # 0-200
    word_gap: tuple[float, float]  # units of 10 ms


# Chosen so neighbouring classes overlap (angry/happy in rate and loudness,
# neutral/sad in pitch), as acted emotions do.
STYLES = {
    "angry": Style(rate=(205, 22), pitch=(52, 9), pitch_range=(70, 22), amplitude=(150, 25), word_gap=(0, 1)),
    "happy": Style(rate=(190, 22), pitch=(66, 9), pitch_range=(130, 30), amplitude=(125, 25), word_gap=(0, 1)),
    "neutral": Style(rate=(168, 16), pitch=(46, 8), pitch_range=(55, 18), amplitude=(100, 18), word_gap=(1, 1)),
    "sad": Style(rate=(130, 18), pitch=(36, 9), pitch_range=(30, 14), amplitude=(75, 18), word_gap=(4, 2)),
}


@dataclass
class Plan:
    """Everything needed to render one utterance; derived from the seed alone."""

    key: str
    voice: Voice
    label: str
    cue: str
    text: str
    rate: int
    pitch: int
    pitch_range: int
    amplitude: int
    word_gap: int
    noise_snr_db: float
    lead_silence: float
    trail_silence: float
    noise_seed: int


def _draw(rng: random.Random, spec: tuple[float, float], low: float, high: float) -> int:
    return int(round(min(high, max(low, rng.gauss(*spec)))))


def _quota(shares: np.ndarray, count: int) -> list[str]:
    """``count`` cues split by ``shares`` with largest-remainder rounding."""
    exact = shares * count
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: count - counts.sum()]:
        counts[i] += 1
    return [cue for cue, n in zip(CUES, counts) for _ in range(n)]


def plan_corpus(seed: int, speakers: int, utterances_per_speaker: int, cue_shares: dict[str, float]) -> list[Plan]:
    """Decide every utterance's label, cue, sentence and prosody (no audio yet)."""
    if not 2 <= speakers <= len(VOICES):
        raise InvalidInput(f"speakers must be between 2 and {len(VOICES)}, got {speakers}")
    if utterances_per_speaker < len(LABELS):
        raise InvalidInput(f"utterances_per_speaker must be at least {len(LABELS)}")
    unknown = set(cue_shares) - set(CUES)
    if unknown:
        raise InvalidInput(f"unknown cue(s) {sorted(unknown)} in cue_shares; known: {list(CUES)}")
    shares = np.array([cue_shares.get(c, 0.0) for c in CUES], dtype=float)
    if (shares < 0).any() or shares.sum() <= 0:
        raise InvalidInput(f"cue_shares must be non-negative with a positive sum, got {cue_shares}")
    shares /= shares.sum()
    rng = random.Random(seed)
    plans = []
    for voice in VOICES[:speakers]:
        # Cues are assigned by quota per speaker and label, so every speaker has the same mix.
        pairs = []
        for i, label in enumerate(LABELS):
            count = utterances_per_speaker // len(LABELS) + (i < utterances_per_speaker % len(LABELS))
            pairs += [(label, cue) for cue in _quota(shares, count)]
        rng.shuffle(pairs)
        for index, (label, cue) in enumerate(pairs):
            text = ambiguous_sentence(rng) if cue in ("speech", "face") else emotional_sentence(label, rng)
            style = STYLES["neutral" if cue in ("text", "face") else label]
            plans.append(Plan(
                key=f"demo-{voice.speaker}-{index:04d}",
                voice=voice, label=label, cue=cue, text=text,
                rate=_draw(rng, (style.rate[0] * voice.rate_scale, style.rate[1]), 90, 300),
                pitch=_draw(rng, (style.pitch[0] + voice.pitch_offset, style.pitch[1]), 0, 99),
                pitch_range=_draw(rng, style.pitch_range, 5, 200),
                amplitude=_draw(rng, style.amplitude, 30, 200),
                word_gap=_draw(rng, style.word_gap, 0, 10),
                noise_snr_db=rng.uniform(18.0, 35.0),
                lead_silence=rng.uniform(0.05, 0.3),
                trail_silence=rng.uniform(0.05, 0.3),
                noise_seed=rng.randrange(2**31),
            ))
    return plans


def _spoken_text(plan: Plan) -> str:
    """SSML for espeak-ng; the delivery (not the transcript) carries style punctuation."""
    sentence = plan.text.rstrip(".?")
    ending = {"angry": "!", "happy": "!", "sad": "...", "neutral": "."}[
        "neutral" if plan.cue in ("text", "face") else plan.label]
    if plan.text.endswith("?"):
        ending = "?"
    return (f'<speak><prosody range="{plan.pitch_range}%">'
            f"{sentence}{ending}</prosody></speak>")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def render(plan: Plan, workdir: Path) -> np.ndarray:
    """Speak one planned utterance and return 16 kHz float32 audio with light noise."""
    target = workdir / f"{plan.key}.wav"
    command = ["espeak-ng", "-m", "-v", plan.voice.voice, "-s", str(plan.rate), "-p", str(plan.pitch),
               "-a", str(plan.amplitude), "-g", str(plan.word_gap), "-w", str(target), _spoken_text(plan)]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not target.is_file():
        raise MissingDependency(f"espeak-ng failed for {plan.key}: {result.stderr.decode(errors='replace')}")
    wave, rate = soundfile.read(str(target), dtype="float32")
    target.unlink()
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    wave = np.concatenate([np.zeros(int(plan.lead_silence * SAMPLE_RATE), np.float32), wave,
                           np.zeros(int(plan.trail_silence * SAMPLE_RATE), np.float32)])
    noise_rng = np.random.default_rng(plan.noise_seed)
    speech_power = float(np.mean(wave**2)) + 1e-12
    noise = noise_rng.standard_normal(len(wave)).astype(np.float32)
    noise *= np.sqrt(speech_power / 10 ** (plan.noise_snr_db / 10))
    return np.clip(wave + noise, -1.0, 1.0)


def synthesize_corpus(
    out: str | os.PathLike,
    *,
    seed: int = 13,
    speakers: int = 10,
    utterances_per_speaker: int = 100,
    cue_shares: dict[str, float] | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    faces: bool = False,
) -> Path:
    """Write the demo corpus to ``out`` (manifest, WAVs, folds, label map, README).

    The corpus is built in a temporary sibling folder and moved into place at
    the end, so an interrupted run never leaves a half corpus that looks whole.
    """
    if not espeak_available():
        raise MissingDependency(
            "espeak-ng is not installed, so the demo corpus cannot be synthesised. "
            "Install it (Debian/Ubuntu: `sudo apt-get install espeak-ng`; macOS: "
            "`brew install espeak-ng`) or rerun `make setup`, which installs it when it can."
        )
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to rebuild it")
        shutil.rmtree(out)
    cue_shares = dict(cue_shares or {"speech": 0.35, "text": 0.35, "both": 0.30})
    if cue_shares.get("face") and not faces:
        raise InvalidInput("cue_shares has a 'face' share but faces=false: face-cued utterances need the face track")
    plans = plan_corpus(seed, speakers, utterances_per_speaker, cue_shares)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        scratch = staging / ".scratch"
        scratch.mkdir()
        utterances = []

        def build(plan: Plan) -> Utterance:
            wave = render(plan, scratch)
            relative = Path("wav") / plan.voice.speaker / f"{plan.key}.wav"
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(staging / relative), wave, SAMPLE_RATE, subtype="PCM_16")
            session = f"session{(VOICES.index(plan.voice)) // 2 + 1}"
            video = None
            if faces:
                video = Path("video") / plan.voice.speaker / f"{plan.key}.mp4"
                (staging / video).parent.mkdir(parents=True, exist_ok=True)
                # a stream of its own (from the plan's seed), so the audio plans stay as without faces
                face_rng = random.Random(plan.noise_seed ^ 0x5EED)
                render_video(staging / video, wave, SAMPLE_RATE, identity(seed * 1000 + VOICES.index(plan.voice)),
                             expression(plan.label, plan.cue == "face", face_rng), plan.noise_seed)
            return Utterance(
                key=plan.key, dataset="demo", wav=str(relative), length=round(len(wave) / SAMPLE_RATE, 4),
                emo=plan.label, speaker=plan.voice.speaker, lang="en", text=plan.text, channel=1,
                session=session, gender=plan.voice.gender, video=str(video) if video else None,
                extra=extras(plan, STYLES["neutral"]),
            )

        with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
            for utterance in tqdm(pool.map(build, plans), total=len(plans), desc="synthesising demo corpus",
                                  unit="utt"):
                utterances.append(utterance)
        shutil.rmtree(scratch)
        write_manifest(utterances, staging / "manifest.jsonl")
        voices = VOICES[:speakers]
        groups = [[v.speaker for v in voices[i: i + 2]] for i in range(0, len(voices), 2)]
        write_folds(make_speaker_folds(utterances, groups), staging, "demo")
        (staging / "label_map.json").write_text(json.dumps({label: label for label in LABELS}, indent=2) + "\n")
        info = {
            "corpus": "mmemo-demo", "version": CORPUS_VERSION, "seed": seed, "speakers": speakers,
            "utterances_per_speaker": utterances_per_speaker, "cue_shares": cue_shares,
            "espeak_ng": _espeak_version(), "fold_groups": groups, "faces": faces,
            "styles": {label: asdict(style) for label, style in STYLES.items()},
            "dimensions": DIMENSIONS, "dimension_rules": RULES,
            "counts": {"label": Counter(u.emo for u in utterances),
                       "cue": Counter(u.extra["cue"] for u in utterances)},
        }
        (staging / "corpus.json").write_text(json.dumps(info, indent=2) + "\n")
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("demo corpus: %d utterances, %d speakers, %d folds -> %s", len(plans), speakers, len(groups), out)
    return out


def _espeak_version() -> str:
    result = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()
