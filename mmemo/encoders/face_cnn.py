"""``face_cnn``: a small CNN trained from scratch on face crops (the video analogue of ``spectral``).

Four conv-BN-ReLU stages with max-pooling on a ``size``x``size`` grey or RGB crop, then global
average pooling: about 100k parameters, so it trains on a corpus's own faces on a CPU. Each
crop is encoded on its own (:class:`~mmemo.encoders.base.FrameWiseVideoEncoder`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmemo.encoders.base import FrameWiseVideoEncoder
from mmemo.errors import InvalidInput


class FaceCNNEncoder(FrameWiseVideoEncoder):
    """``model/video=face_cnn``: conv stages of ``width``, 2x, 4x, 4x channels on a resized crop."""

    name = "face_cnn"

    def __init__(self, width: int = 16, size: int = 48, grey: bool = True, dropout: float = 0.1,
                 frame_rate: float = 5.0, trainable: str = "full"):
        super().__init__(frame_rate, trainable)
        if trainable not in ("full", "frozen"):
            raise InvalidInput(f"face_cnn is trained from scratch: trainable must be full or frozen, got {trainable!r}")
        if not 16 <= int(size) <= 256 or int(width) < 1:
            raise InvalidInput(f"face_cnn needs 16 <= size <= 256 and width >= 1, got size={size}, width={width}")
        self.size, self.grey, self.width = int(size), bool(grey), int(width)
        channels = [1 if grey else 3, width, 2 * width, 4 * width, 4 * width]
        self.stages = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b),
                                                  nn.ReLU()) for a, b in zip(channels[:-1], channels[1:]))
        self.dropout = nn.Dropout(dropout)
        self.apply_trainable_mode()

    @property
    def dim(self) -> int:
        return 4 * self.width

    def config(self) -> dict:
        return {**super().config(), "width": self.width, "size": self.size, "grey": self.grey}

    def encode_frames(self, crops: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
        x = crops.float().permute(0, 3, 1, 2) / 255.0
        if self.grey:
            x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > self.size)
        x = (x - 0.5) / 0.25
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index < len(self.stages) - 1:
                x = F.max_pool2d(x, 2)
        return self.dropout(x.mean((2, 3)))
