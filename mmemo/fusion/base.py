"""The fusion-head contract and registry.

A head takes a dict of modality name -> :class:`EncoderOutput`, so adding a
modality (video, physiology) needs no change to the heads. A new head is one
file that subclasses :class:`FusionHead` with ``@register("name")``, plus one
config in ``configs/model/fusion/``.

**Missing modalities.** A modality is missing for the whole batch when its key
is absent from the dict, and for one sample when that sample's mask row has no
valid frame (an utterance without a transcript, or a modality dropped by
modality dropout during training). Every head must give a prediction as long
as one modality is present; how it degrades is documented per head. Heads get
a learned stand-in vector per modality (:attr:`FusionHead.missing`) that
modality dropout trains.

**Inputs are standardised** (``normalize``, default on): every modality's features are
scaled per dimension with running statistics (:class:`~mmemo.fusion.layers.Standardize`)
before the head sees them — pooled vectors for heads that pool first, frames for heads
that read frames. **Pooling** (``pooling``, heads that pool first): ``mean`` or
``mean_std`` (default; the mean and standard deviation over frames, the statistics a
linear probe uses). Both were the gap between mmemo's heads and a logistic regression on
the same frozen features (docs/decisions.md, issue 13).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.errors import InvalidInput
from mmemo.fusion.layers import Standardize, mlp

#: How heads that pool first summarise a modality's frames.
POOLINGS = ("mean", "mean_std")
_REGISTRY: dict[str, type[FusionHead]] = {}


@dataclass
class FusionOutput:
    """logits: [B,C]; aux_losses: extra training losses by name (added to the loss and logged);
    embeddings: [B,E] by name (``fused``: what the head's classifier reads, which regression reads too);
    logs: scalars worth logging (e.g. a learned temperature); present: [B] bool per modality, for
    heads whose regression combines per-modality predictions (late fusion)."""

    logits: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, torch.Tensor] = field(default_factory=dict)
    present: dict[str, torch.Tensor] = field(default_factory=dict)


class FusionHead(nn.Module):
    """Base class. ``input_dims`` fixes the modalities (and their order) the head knows.

    Subclasses implement ``forward(feats, targets=None) -> FusionOutput``; ``targets``
    ([B] class ids) is given during training and validation for heads whose
    auxiliary losses need labels.
    """

    #: Whether the head looks at individual frames. Heads that only mean-pool each
    #: modality first (False) can be fed features pooled once per utterance, which
    #: makes training on cached features several times faster.
    needs_frames: bool = False

    def __init__(self, input_dims: dict[str, int], num_classes: int, *, normalize: bool = True,
                 pooling: str = "mean_std"):
        super().__init__()
        if not input_dims:
            raise InvalidInput("a fusion head needs at least one modality")
        if pooling not in POOLINGS:
            raise InvalidInput(f"fusion pooling must be one of {POOLINGS}, got {pooling!r}")
        self.input_dims = dict(input_dims)
        self.modalities = tuple(input_dims)
        self.num_classes = num_classes
        self.normalize = bool(normalize)
        #: Heads that read frames pool inside themselves; ``pooling`` is for heads that pool first.
        self.pooling = "mean" if self.needs_frames else pooling
        width = 2 if self.pooling == "mean_std" else 1
        #: Size of each modality's vector from :meth:`pooled` (what the head's layers take).
        self.pooled_dims = {m: d * width for m, d in input_dims.items()}
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(self.pooled_dims[m])) for m in input_dims})
        sizes = input_dims if self.needs_frames else self.pooled_dims
        self.standardize = nn.ModuleDict({m: Standardize(d) for m, d in sizes.items()}) if self.normalize else None

    def regressor(self, outputs: int, hidden: int = 256, dropout: float = 0.2) -> nn.Module:
        """A regression head for ``outputs`` dimensions (arousal, valence, ...) on this head's fused
        embedding, the vector its classifier reads; heads that fuse predictions (late) override it."""
        return FusedRegressor(self.fused_dim(), outputs, hidden, dropout)

    def fused_dim(self) -> int:
        """Width of ``embeddings['fused']``, found by one forward pass on a dummy batch (in eval mode:
        running statistics untouched), so no head has to restate its own arithmetic."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            dummy = {m: EncoderOutput(torch.zeros(2, 3, d), torch.ones(2, 3, dtype=torch.bool))
                     for m, d in self.input_dims.items()}
            output = self(dummy)
        self.train(was_training)
        if "fused" not in output.embeddings:
            raise InvalidInput(f"fusion head {type(self).__name__} has no fused embedding to regress from")
        return int(output.embeddings["fused"].shape[-1])

    def check_inputs(self, feats: dict[str, EncoderOutput]) -> None:
        unknown = set(feats) - set(self.modalities)
        if unknown:
            raise KeyError(f"{type(self).__name__} was built for {list(self.modalities)}, got {sorted(unknown)}")
        if not feats:
            raise InvalidInput(f"{type(self).__name__} got no modality at all")

    def presence(self, feats: dict[str, EncoderOutput]) -> dict[str, torch.Tensor]:
        """Which samples have each modality: ``{modality: [B] bool}``; refuses samples with none."""
        self.check_inputs(feats)
        reference = next(iter(feats.values())).mask
        present = {m: feats[m].mask.any(1) if m in feats else reference.new_zeros(reference.shape[0])
                   for m in self.modalities}
        anything = torch.stack(list(present.values())).any(0)
        if not bool(anything.all()):
            raise InvalidInput(f"{int((~anything).sum())} sample(s) have none of the modalities "
                               f"{list(self.modalities)}")
        return present

    def pooled(self, feats: dict[str, EncoderOutput], present: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each modality pooled (``pooling``) and standardised, [B, pooled_dims[m]]; missing samples
        get the learned stand-in."""
        batch = next(iter(present.values())).shape[0]
        out = {}
        for m in self.modalities:
            stand_in = self.missing[m].expand(batch, -1)
            if m not in feats:
                out[m] = stand_in
                continue
            mean, second = moments(feats[m])
            vector = mean if self.pooling == "mean" else torch.cat(
                [mean, torch.sqrt((second - mean.float() ** 2).clamp(min=0.0) + 1e-8).to(mean.dtype)], -1)
            if self.standardize is not None:
                vector = self.standardize[m](vector, present[m])
            out[m] = torch.where(present[m][:, None], vector, stand_in.to(vector.dtype))
        return out

    def standardized(self, feats: dict[str, EncoderOutput]) -> dict[str, EncoderOutput]:
        """Frames scaled per dimension (heads that read frames call this first)."""
        if self.standardize is None:
            return feats
        return {m: replace(out, frames=self.standardize[m](out.frames, out.mask)) for m, out in feats.items()}


class FusedRegressor(nn.Module):
    """Dimensional values [B, D] from a head's fused embedding (the same MLP shape as its classifier)."""

    def __init__(self, inputs: int, outputs: int, hidden: int, dropout: float):
        super().__init__()
        self.net = mlp(inputs, hidden, outputs, dropout)

    def forward(self, output: FusionOutput) -> torch.Tensor:
        return self.net(output.embeddings["fused"]).float()


def register(name: str):
    """Class decorator adding a head to the registry under ``name``."""

    def add(cls: type[FusionHead]) -> type[FusionHead]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise InvalidInput(f"fusion head {name!r} is registered twice")
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return add


def available_heads() -> list[str]:
    """Every registered head: importing each module of ``mmemo.fusion`` registers the heads it holds."""
    from mmemo.discovery import import_submodules

    import_submodules("mmemo.fusion", skip=("base", "layers"))
    return sorted(_REGISTRY)


def head_class(name: str) -> type[FusionHead]:
    """The head registered as ``name``; an unknown name lists the known ones."""
    heads = available_heads()
    if name not in _REGISTRY:
        raise InvalidInput(f"unknown fusion head {name!r}; available: {heads}")
    return _REGISTRY[name]


def head_needs_frames(name: str) -> bool:
    """Whether the registered head ``name`` reads frames (else pooled features are enough)."""
    return head_class(name).needs_frames


def build_fusion(name: str, input_dims: dict[str, int], num_classes: int, **options) -> FusionHead:
    """Instantiate the head registered as ``name``."""
    return head_class(name)(input_dims, num_classes, **options)


def moments(output: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and mean of squares over valid frames, each [B,D].

    Features served pooled (``output.moments``) already are these two rows per utterance;
    otherwise they are computed over the frames.
    """
    if output.moments:
        return output.frames[:, 0], output.frames[:, 1].float()
    mean = masked_mean(output.frames, output.mask)
    return mean, masked_mean(output.frames.float() ** 2, output.mask)


def masked_mean(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames only. frames: [B,T,D]; mask: [B,T] -> [B,D]."""
    weights = mask.to(frames.dtype)[..., None]
    return (frames * weights).sum(1) / weights.sum(1).clamp(min=1.0)
