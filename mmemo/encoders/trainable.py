"""Trainable modes for any component built on pretrained weights (encoders, Whisper's decoder).

* ``frozen``: no gradients, always in eval mode (outputs can be cached);
* ``top_k``: only the last ``top_k`` layers (see :meth:`TrainableModes.layer_stack`) train;
* ``full``: everything trains;
* ``lora``: the weights stay frozen and peft LoRA adapters are injected into the modules
  named by ``lora.target_modules`` (default: the component's ``lora_targets``).

Parameters a component adds on top of pretrained weights (e.g. the softmax weights of
``layer=weighted``) train in every mode; subclasses create them after calling
:meth:`TrainableModes.apply_trainable_mode`. :meth:`fixed_weights` and
:meth:`source_fingerprint` let a checkpoint reference the weights that never train instead of
copying them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn

from mmemo.errors import InvalidInput

TRAINABLE_MODES = ("frozen", "top_k", "full", "lora")
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None}


def tensor_digest(digest, tensors: dict[str, torch.Tensor]) -> None:
    """Feed named tensors (names, dtypes, bytes) into a hashlib digest, in name order."""
    for key, tensor in sorted(tensors.items()):
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


class TrainableModes:
    """A mixin for ``nn.Module`` subclasses: call :meth:`init_trainable` in ``__init__`` and
    :meth:`apply_trainable_mode` once the pretrained weights exist."""

    #: Module-name suffixes LoRA adapts by default.
    lora_targets: tuple[str, ...] = ()

    def init_trainable(self, trainable: str = "full", top_k: int = 2, lora: dict | None = None) -> None:
        if trainable not in TRAINABLE_MODES:
            raise InvalidInput(f"trainable must be one of {TRAINABLE_MODES}, got {trainable!r}")
        if trainable == "top_k" and top_k < 1:
            raise InvalidInput(f"top_k must be at least 1, got {top_k}")
        unknown = set(lora or {}) - set(LORA_DEFAULTS)
        if unknown:
            raise InvalidInput(f"unknown LoRA options {sorted(unknown)}; known: {sorted(LORA_DEFAULTS)}")
        self.trainable = trainable
        self.top_k = top_k
        self.lora = {**LORA_DEFAULTS, **(lora or {})}

    @property
    def frozen(self) -> bool:
        return self.trainable == "frozen"

    def layer_stack(self) -> Sequence[nn.Module]:
        """The layers from input to output; ``top_k`` trains the last k of them."""
        raise TypeError(f"{type(self).__name__} does not support trainable=top_k")

    def lora_root(self) -> nn.Module:
        """The module LoRA adapters are injected into (the wrapped pretrained model)."""
        raise TypeError(f"{type(self).__name__} does not support trainable=lora")

    def apply_trainable_mode(self) -> None:
        if self.trainable == "full":
            return
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        if self.trainable == "frozen":
            self.eval()
        elif self.trainable == "top_k":
            layers = list(self.layer_stack())
            if self.top_k > len(layers):
                raise InvalidInput(f"top_k={self.top_k} but {type(self).__name__} has {len(layers)} layers")
            for layer in layers[-self.top_k:]:
                for parameter in layer.parameters():
                    parameter.requires_grad_(True)
        elif self.trainable == "lora":
            self._inject_lora()

    def _inject_lora(self) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        targets = self.lora["target_modules"] or list(self.lora_targets)
        if not targets:
            raise InvalidInput(f"{type(self).__name__} has no default LoRA targets; set lora.target_modules")
        config = LoraConfig(r=int(self.lora["r"]), lora_alpha=int(self.lora["alpha"]),
                            lora_dropout=float(self.lora["dropout"]), target_modules=list(targets))
        try:
            inject_adapter_in_model(config, self.lora_root())
        except ValueError as error:
            raise InvalidInput(f"LoRA could not find modules {targets} in {type(self).__name__}: {error}") from None
        for name, parameter in self.named_parameters():
            parameter.requires_grad_("lora_" in name)

    def fixed_weights(self) -> dict[str, torch.Tensor]:
        """Weights that never train in this mode (what a checkpoint can reference by hash):
        frozen parameters and persistent buffers such as fixed positional tables. A trained tensor
        reachable under two names (a causal LM and its decoder, both registered) is trained under both."""
        trainable = {id(p) for p in self.parameters() if p.requires_grad}
        return {name: t for name, t in self.state_dict(keep_vars=True).items() if id(t) not in trainable}

    def source_fingerprint(self) -> str:
        """A hash of :meth:`fixed_weights`: identifies the pretrained weights a run started from."""
        if not hasattr(self, "_source_fingerprint"):
            digest = hashlib.sha256()
            tensor_digest(digest, self.fixed_weights())
            self._source_fingerprint = digest.hexdigest()[:16]
        return self._source_fingerprint
