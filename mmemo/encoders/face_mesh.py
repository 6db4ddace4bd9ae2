"""``face_mesh``: MediaPipe landmark trajectories as a light geometric video encoder.

Each frame's 478 aligned landmarks (:class:`~mmemo.video.faces.FaceTrack`: eye line horizontal,
inter-ocular distance fixed) are centred on their mean and, optionally, joined by their
velocity (the change since the previous frame of the same clip, zero at the first frame and
after a frame without a face). ``points`` keeps all landmarks or the expressive regions only
(lips, eyes, eyebrows, irises: 100 points). Nothing is learned here: the fusion head projects.
"""

from __future__ import annotations

import torch

from mmemo.encoders.base import EncoderOutput, VideoEncoder
from mmemo.errors import InvalidInput
from mmemo.video.faces import MESH_POINTS

POINT_SETS = ("all", "expressive")


def expressive_points() -> list[int]:
    """Landmark indices of MediaPipe's lips, eyes, eyebrows and irises (from its connection sets)."""
    from mediapipe.python.solutions import face_mesh_connections as c

    sets = (c.FACEMESH_LIPS, c.FACEMESH_LEFT_EYE, c.FACEMESH_RIGHT_EYE, c.FACEMESH_LEFT_EYEBROW,
            c.FACEMESH_RIGHT_EYEBROW, c.FACEMESH_LEFT_IRIS, c.FACEMESH_RIGHT_IRIS)
    return sorted({i for edges in sets for edge in edges for i in edge})


class FaceMeshEncoder(VideoEncoder):
    """Centred landmark coordinates (x, y, z) per frame, with velocities if asked (``model/video=face_mesh``)."""

    name = "face_mesh"

    def __init__(self, points: str = "expressive", velocities: bool = True, frame_rate: float = 5.0,
                 trainable: str = "frozen"):
        super().__init__(frame_rate, trainable)
        if points not in POINT_SETS:
            raise InvalidInput(f"face_mesh points must be one of {POINT_SETS}, got {points!r}")
        self.points = points
        self.velocities = bool(velocities)
        index = list(range(MESH_POINTS)) if points == "all" else expressive_points()
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)

    @property
    def dim(self) -> int:
        return int(self.index.numel()) * 3 * (2 if self.velocities else 1)

    def config(self) -> dict:
        return {**super().config(), "points": self.points, "velocities": self.velocities}

    def forward(self, faces: torch.Tensor, face_mask: torch.Tensor,
                landmarks: torch.Tensor | None = None) -> EncoderOutput:
        if landmarks is None:
            raise InvalidInput("face_mesh needs landmarks (data.video.detector=mediapipe)")
        mask = face_mask.bool()
        points = landmarks[:, :, self.index].float()  # [B,T,P,3]
        centred = (points - points.mean(2, keepdim=True)) * mask[..., None, None]
        frames = centred.flatten(2)
        if self.velocities:
            previous = torch.cat([frames[:, :1], frames[:, :-1]], 1)
            both = mask & torch.cat([mask[:, :1], mask[:, :-1]], 1)
            both[:, 0] = False
            frames = torch.cat([frames, (frames - previous) * both[..., None] * self.frame_rate], -1)
        return EncoderOutput(frames * mask[..., None], mask)
