"""Hugging Face vision backbones on face crops: ViT, the CLIP vision tower, VideoMAE, ... by hub id or folder.

Image models (ViT, DeiT, CLIP/SigLIP vision towers: anything ``AutoModel`` loads whose forward
takes ``pixel_values`` [N,3,H,W]) encode each crop on its own; the frame is the pooled output
(``pooler_output``, else the first token). Video models (VideoMAE: ``pixel_values`` [N,T,3,H,W])
encode non-overlapping windows of the model's ``num_frames`` crops, each window one output frame
(``frame_rate`` = sampling rate / ``num_frames``); a window is valid when any of its crops shows a
face, and windows never mix clips, so padding cannot leak. Normalisation follows the model's
``preprocessor_config.json`` when present.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from mmemo.encoders.base import EncoderOutput, VideoEncoder
from mmemo.errors import InvalidInput


def _load(path: str):
    from transformers import AutoConfig, AutoModel

    local = Path(path).expanduser()
    source = str(local) if local.is_dir() else path
    try:
        config = AutoConfig.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
        if config.model_type in ("clip", "siglip"):  # a dual encoder: keep the vision tower alone
            model = model.vision_model
    except (OSError, ValueError) as error:
        where = f"from {local}" if local.is_dir() else f"{path!r} from the hub (offline? pass a local folder)"
        raise OSError(f"could not load a vision model {where}: {error}") from error
    stats = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    processor = local / "preprocessor_config.json" if local.is_dir() else None
    if processor is not None and processor.is_file():
        stored = json.loads(processor.read_text(encoding="utf-8"))
        stats = {k: stored.get(k, v) for k, v in stats.items()}
    return model, stats


class VisionBackboneEncoder(VideoEncoder):
    """``model/video=vit`` (any image or video ``AutoModel``), frozen by default."""

    lora_targets = ("query", "key", "value", "q_proj", "k_proj", "v_proj")

    def __init__(self, path: str, frame_rate: float = 5.0, trainable: str = "frozen", top_k: int = 2,
                 lora: dict | None = None, name: str | None = None):
        super().__init__(frame_rate, trainable, top_k, lora)
        self.path = str(path)
        self.pretrained_source = self.path
        self.name = name or Path(self.path.rstrip("/")).name
        self.model, stats = _load(self.path)
        config = self.model.config
        self.image_size = int(getattr(config, "image_size", 224))
        self.window = int(getattr(config, "num_frames", 1) or 1) if "videomae" in config.model_type else 1
        self.register_buffer("mean", torch.tensor(stats["image_mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(stats["image_std"]).view(1, 3, 1, 1), persistent=False)
        self.apply_trainable_mode()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def frame_rate(self) -> float:
        return self._frame_rate / self.window

    def layer_stack(self):
        # the transformer blocks: the module list as long as the config's layer count (its name
        # differs between architectures and transformers releases: layer, layers, encoder.layer)
        count = int(getattr(self.model.config, "num_hidden_layers", -1))
        for module in self.model.modules():
            if isinstance(module, torch.nn.ModuleList) and len(module) == count:
                return list(module)
        raise InvalidInput(f"{self.name}: no list of {count} transformer layers found for trainable=top_k")

    def lora_root(self):
        return self.model

    def config(self) -> dict:
        return {**super().config(), "path": self.path, "window": self.window}

    def _pixels(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.float().permute(0, 3, 1, 2) / 255.0
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.image_size)
        return (x - self.mean) / self.std

    def _pooled(self, outputs) -> torch.Tensor:
        if self.window > 1:  # VideoMAE has no class token: its classifier averages the tokens
            return outputs.last_hidden_state.mean(1)
        pooled = getattr(outputs, "pooler_output", None)
        return pooled if pooled is not None else outputs.last_hidden_state[:, 0]

    def forward(self, faces: torch.Tensor, face_mask: torch.Tensor,
                landmarks: torch.Tensor | None = None) -> EncoderOutput:
        batch, steps = face_mask.shape
        mask = face_mask.bool()
        if self.window == 1:
            out = torch.zeros(batch, steps, self.dim, device=faces.device)
            if mask.any():
                picked = self._pooled(self.model(pixel_values=self._pixels(faces[mask])))
                out = out.to(picked.dtype)
                out[mask] = picked
            return EncoderOutput(out, mask)
        # video models: windows of `window` crops within each clip (the last one padded by repetition)
        lengths = mask.flip(1).int().argmax(1)
        lengths = torch.where(mask.any(1), steps - lengths, torch.zeros_like(lengths))
        count = int(-(-max(int(lengths.max()), 1) // self.window))
        out = torch.zeros(batch, count, self.dim, device=faces.device)
        out_mask = torch.zeros(batch, count, dtype=torch.bool, device=faces.device)
        clips, where = [], []
        for row in range(batch):
            for w in range(int(-(-int(lengths[row]) // self.window))):
                index = torch.arange(w * self.window, (w + 1) * self.window).clamp(max=int(lengths[row]) - 1)
                if mask[row, index].any():
                    clips.append(self._pixels(faces[row, index]))
                    where.append((row, w))
        if clips:
            pooled = self._pooled(self.model(pixel_values=torch.stack(clips)))
            out = out.to(pooled.dtype)
            for (row, w), value in zip(where, pooled):
                out[row, w] = value
                out_mask[row, w] = True
        return EncoderOutput(out, out_mask)
