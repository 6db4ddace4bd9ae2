"""The demo corpus's face track: a drawn talking face per utterance, written as .mp4 with the audio.

Each speaker has a face of their own (skin and hair colour, face shape, eye spacing, drawn from
the speaker's seed). Each utterance's expression comes from four parameters (smile, inner-brow
raise, eye openness, mouth tension) drawn around its class's values with jitter, so neighbouring
classes overlap as they do in speech. The mouth opens with the audio's loudness frame by frame,
and the head drifts and tilts a little. A face that carries the label (``expressive``) shows its
class's expression; any other shows a neutral one with the same jitter, so the face then carries
nothing. MediaPipe's face mesh finds these faces (tested), so the real video pipeline applies.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmemo.video.writing import write_video

#: Frames per second and side (pixels) of the rendered video.
FPS = 25
SIZE = 128
#: Expression parameters per class: (smile, brow, eye openness, mouth tension) means; jitter below.
EXPRESSIONS = {
    "angry": (-0.35, -1.0, 1.15, 0.8),
    "happy": (1.0, 0.15, 0.85, 0.0),
    "neutral": (0.0, 0.0, 1.0, 0.2),
    "sad": (-0.9, 1.0, 0.7, 0.3),
}
JITTER = (0.3, 0.35, 0.15, 0.3)


@dataclass(frozen=True)
class FaceIdentity:
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    width: float  # fraction of the frame
    height: float
    eye_spacing: float
    background: tuple[int, int, int]


def identity(speaker_seed: int) -> FaceIdentity:
    rng = random.Random(speaker_seed)
    skins = [(235, 200, 170), (210, 165, 130), (175, 125, 90), (130, 90, 60), (225, 185, 150)]
    hairs = [(40, 30, 25), (90, 60, 30), (20, 20, 20), (150, 110, 60), (110, 100, 95)]
    return FaceIdentity(skin=rng.choice(skins), hair=rng.choice(hairs), width=rng.uniform(0.27, 0.32),
                        height=rng.uniform(0.37, 0.42), eye_spacing=rng.uniform(0.38, 0.46),
                        background=tuple(rng.randrange(70, 150) for _ in range(3)))


def expression(label: str, expressive: bool, rng: random.Random) -> tuple[float, ...]:
    means = EXPRESSIONS[label if expressive else "neutral"]
    return tuple(rng.gauss(m, s) for m, s in zip(means, JITTER))


def draw_face(face: FaceIdentity, params: tuple[float, ...], opening: float, dx: float, dy: float,
              tilt: float) -> np.ndarray:
    """One RGB frame: the face with ``params`` (smile, brow, eyes, tension), mouth ``opening`` in [0, 1]."""
    import cv2

    smile, brow, eyes, tension = params
    img = np.empty((SIZE, SIZE, 3), np.uint8)
    img[:] = face.background
    cx, cy = SIZE / 2 + dx, SIZE / 2 + dy
    w, h = face.width * SIZE, face.height * SIZE
    rotation = cv2.getRotationMatrix2D((cx, cy), tilt, 1.0)

    def at(x, y):  # a point of the upright face, rotated by the head tilt
        return np.array([x, y, 1.0]) @ rotation.T

    def pts(array):
        return np.round(np.array([at(x, y) for x, y in array])).astype(np.int32)

    outline = [(cx + w * math.cos(t), cy + h * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 48)]
    cv2.fillPoly(img, [pts(outline)], face.skin, cv2.LINE_AA)
    hair = [(cx + 1.05 * w * math.cos(t), cy - 0.75 * h + 0.45 * h * math.sin(t))
            for t in np.linspace(math.pi, 2 * math.pi, 24)]
    cv2.fillPoly(img, [pts(hair)], face.hair, cv2.LINE_AA)
    eye_y = cy - 0.15 * h
    for side in (-1, 1):
        ex = cx + side * face.eye_spacing * w
        opened = max(0.15, 0.12 * eyes) * w
        eye = [(ex + 0.22 * w * math.cos(t), eye_y + opened * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 24)]
        cv2.fillPoly(img, [pts(eye)], (245, 245, 245), cv2.LINE_AA)
        cv2.circle(img, tuple(pts([(ex, eye_y)])[0]), max(2, int(0.09 * w)), (60, 40, 30), -1, cv2.LINE_AA)
        brow_y = eye_y - 0.30 * w
        inner = (cx + side * 0.15 * w, brow_y - brow * 0.15 * w)
        outer = (cx + side * 0.65 * w, brow_y + brow * 0.05 * w)
        cv2.line(img, *map(tuple, pts([inner, outer])), (50, 35, 30), max(2, int(SIZE * 0.025)), cv2.LINE_AA)
    nose = [(cx, eye_y + 0.1 * w), (cx - 0.08 * w, cy + 0.22 * h), (cx + 0.08 * w, cy + 0.22 * h)]
    cv2.polylines(img, [pts(nose)], False, (150, 110, 90), 2, cv2.LINE_AA)
    mouth_y, half = cy + 0.5 * h, (0.45 - 0.1 * tension) * w
    xs = np.linspace(-half, half, 16)
    bend = 1 - (xs / half) ** 2
    curve = smile * 0.25 * w * bend  # smile > 0: the centre sits lower than the corners
    top = [(cx + x, mouth_y + c - (0.04 + 0.10 * opening) * w * b) for x, c, b in zip(xs, curve, bend)]
    bottom = [(cx + x, mouth_y + c + (0.04 + 0.30 * opening) * w * b) for x, c, b in zip(xs, curve, bend)]
    cv2.fillPoly(img, [pts(top + bottom[::-1])], (120, 40, 50), cv2.LINE_AA)
    return img


def mouth_openings(wave: np.ndarray, sample_rate: int, frames: int) -> np.ndarray:
    """Per video frame, the audio's loudness mapped to a mouth opening in [0, 1]."""
    hop = sample_rate / FPS
    rms = np.array([np.sqrt(np.mean(wave[int(i * hop): int((i + 1) * hop)] ** 2) + 1e-12) for i in range(frames)])
    level = 20 * np.log10(rms / (rms.max() + 1e-12) + 1e-12)
    return np.clip((level + 30) / 30, 0, 1)


def render_video(path: Path, wave: np.ndarray, sample_rate: int, face: FaceIdentity, params: tuple[float, ...],
                 seed: int) -> Path:
    """Write the talking face for ``wave`` (and the audio as AAC) to ``path`` (.mp4, mpeg4 video)."""
    rng = np.random.default_rng(seed)
    count = max(1, int(math.ceil(len(wave) / sample_rate * FPS)))
    opening = mouth_openings(wave, sample_rate, count)
    phase, speed = rng.uniform(0, 2 * math.pi, 3), rng.uniform(0.3, 0.9, 3)
    frames = (draw_face(face, params, float(opening[i]),
                        dx=3 * math.sin(2 * math.pi * speed[0] * i / FPS + phase[0]),
                        dy=2 * math.sin(2 * math.pi * speed[1] * i / FPS + phase[1]),
                        tilt=6 * math.sin(2 * math.pi * speed[2] * i / FPS + phase[2])) for i in range(count))
    return write_video(path, frames, FPS, bit_rate=150_000, audio=wave, sample_rate=sample_rate)
