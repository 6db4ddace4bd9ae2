"""``EmotionClassifier``: encoders + fusion head + loss + metrics, as a LightningModule.

Training, evaluation and prediction all load this one class from its
checkpoint (:func:`load_classifier`). The fixed (never trained) weights of
pretrained encoders are not copied into every checkpoint: the checkpoint keeps
the trained weights (a head, LoRA adapters, top-k layers), records where the
pretrained weights came from with a fingerprint, reloads them from there, and
refuses to load if the weights found there differ.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class
from torch import nn

from mmemo.encoders.base import Encoder, EncoderOutput
from mmemo.encoders.build import build_encoder
from mmemo.errors import InvalidInput
from mmemo.features.cached import Serving
from mmemo.fusion.base import head_class
from mmemo.training.checkpoints import CheckpointError, read_checkpoint
from mmemo.training.errors import NonFiniteScoresError
from mmemo.training.objectives import Objective, class_weights, legacy_state_keys

log = logging.getLogger(__name__)

#: 2: fusion heads standardise their inputs and pool mean + std by default (issue 13); checkpoints
#: without the field are format 1 and are rebuilt with the options they were trained with.
HEAD_FORMAT = 2
#: Which batch fields feed each modality's encoder.
MODALITY_INPUTS = {"speech": ("audio", "audio_mask"), "text": ("text",),
                   "video": ("faces", "face_mask", "landmarks")}
#: The modalities a classifier can have, in the order their encoders are built.
MODALITIES = tuple(MODALITY_INPUTS)


#: Optimisation defaults (``configs/model/default.yaml`` restates them; a test keeps the two equal).
OPTIM_DEFAULTS = {"lr": 1e-3, "encoder_lr": 2e-5, "lora_lr": 5e-4, "layer_decay": 1.0, "weight_decay": 0.01,
                  "warmup_ratio": 0.05, "scheduler": "cosine"}
LOSS_DEFAULTS = {"class_weights": "none", "label_smoothing": 0.0, "regression": "ccc", "weighting": "fixed",
                 "task_weights": {"classes": 1.0, "dimensions": 1.0}}


class EmotionClassifier(L.LightningModule):
    """Encoders + a fusion head, the loss and the metrics: ``model._target_`` of every classifier run.

    ``speech``/``text``/``video`` are encoder configs (``_target_`` + options; None for no such branch),
    ``fusion`` the head's config (``_target_`` of a :class:`~mmemo.fusion.base.FusionHead`,
    built with the encoders' dims and the class count). Every encoder is built from its config
    (:func:`~mmemo.encoders.build.build_encoder`; a fully frozen one is shared within a process).
    """

    def __init__(
        self,
        classes: list[str],
        speech: dict | None = None,
        text: dict | None = None,
        fusion: dict | None = None,
        video: dict | None = None,
        optim: dict | None = None,
        loss: dict | None = None,
        class_counts: list[int] | None = None,
        modality_dropout: float = 0.0,
        task: str = "categorical",
        dimensions: list[str] | None = None,
        dimension_stats: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.classes = list(classes)
        specs = {"speech": speech, "text": text, "video": video}
        encoders = {m: build_encoder(specs[m]) for m in MODALITIES if specs[m]}
        if not encoders:
            raise InvalidInput("no modality left: model.speech, model.text and model.video are all none")
        self.encoders = nn.ModuleDict(encoders)
        self.head = self.build_head(dict(fusion or {"name": "concat"}))
        self.optim = {**OPTIM_DEFAULTS, **(optim or {})}
        loss = {**LOSS_DEFAULTS, **(loss or {})}
        #: What is learnt and scored (classes, dimensions, both, distributions): mmemo/training/objectives.py.
        self.objective = Objective(task, self.classes, list(dimensions or []), self.head, loss,
                                   class_weights(loss["class_weights"], class_counts), dimension_stats)
        self.task = self.objective.task
        self.dimensions = self.objective.dimensions
        if not 0.0 <= modality_dropout < 1.0:
            raise InvalidInput(f"model.modality_dropout must be in [0, 1), got {modality_dropout}")
        self.modality_dropout = modality_dropout
        self.results: dict[str, dict] = {}
        self._nonfinite = {"val": 0, "test": 0}  # utterances whose scores were NaN or infinite
        self.test_predictions: list[dict] = []
        self.strict_loading = False  # frozen pretrained encoders are reloaded from their source
        #: The resolved run config (set by ``train``), stored in checkpoints for ``mmemo eval``.
        self.run_config: dict = {}
        # A new model trains, as a new nn.Module does: weights loaded with transformers' from_pretrained
        # arrive in eval mode, and Lightning keeps each module's mode, so their dropout (LoRA's too)
        # would never run. Frozen encoders stay in eval mode (Encoder.train).
        self.train()

    def build_head(self, fusion: dict) -> nn.Module:
        """The fusion head: ``_target_`` (its class) or, in checkpoints older than that, ``name``."""
        options = {k: v for k, v in fusion.items() if k not in ("_target_", "_partial_", "name")}
        dims = {m: e.dim for m, e in self.encoders.items()}
        cls = get_class(fusion["_target_"]) if fusion.get("_target_") else head_class(fusion["name"])
        return cls(dims, len(self.classes), **options)

    # -- what recipes ask the model class before building it ------------------------------
    @classmethod
    def encoder_specs(cls, model_cfg: dict, selected: dict[str, dict | None]) -> dict[str, dict | None]:
        """The encoder configs this model takes from those the run selected (all of them)."""
        return dict(selected)

    @classmethod
    def needs_transcripts(cls, model_cfg: dict, specs: dict[str, dict | None]) -> bool:
        return specs.get("text") is not None

    @classmethod
    def serving(cls, model_cfg: dict, encoders: dict[str, Encoder]) -> Serving:
        """How cached features are served to this model's head (see :mod:`mmemo.features.cached`)."""
        fusion = model_cfg.get("fusion") or {"name": "concat"}
        head = get_class(fusion["_target_"]) if fusion.get("_target_") else head_class(fusion["name"])
        mixed = any(getattr(e, "mixer", None) is not None for e in encoders.values())
        pooled = not head.needs_frames and not (mixed and fusion.get("pooling", "mean_std") == "mean_std")
        return Serving(pooled=pooled, frame_stride={} if pooled else dict(fusion.get("frame_stride") or {}))

    # -- what prediction asks a loaded model --------------------------------------------------
    #: Whether the head can score a window of speech frames (frame-level prediction, streaming).
    scores_frames = True

    def score(self, feats: dict[str, EncoderOutput], batch: dict | None = None) -> torch.Tensor:
        """Class logits [B,C] for encoder outputs (a window of frames, or whole clips), followed, for a
        model with dimensions, by their D values on the normalised [0, 1] scale: [B, C+D]."""
        output = self.head(feats)
        values = self.objective.regress(output)
        return output.logits if values is None else torch.cat([output.logits, values.to(output.logits.dtype)], -1)

    # -- forward -----------------------------------------------------------------------
    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.encoders)

    @property
    def needs_text(self) -> bool:
        """Whether batches must carry transcripts."""
        return "text" in self.encoders

    def encode(self, batch: dict) -> dict[str, EncoderOutput]:
        """Each modality from its cached features when the batch has them, else from its encoder.

        A modality whose inputs are absent from the batch is left out (the head
        degrades gracefully); an empty transcript marks that sample's text as missing.
        """
        outputs = {}
        for modality, encoder in self.encoders.items():
            cached = batch.get(f"{modality}_features")
            if cached is not None:
                outputs[modality] = encoder.from_features(cached, batch[f"{modality}_features_mask"],
                                                          batch.get(f"{modality}_features_stride", 1))
                if batch.get(f"{modality}_features_moments"):
                    outputs[modality] = replace(outputs[modality], moments=True)
            elif all(batch.get(field) is not None for field in MODALITY_INPUTS[modality]):
                outputs[modality] = encoder(*(batch[field] for field in MODALITY_INPUTS[modality]))
        if "text" in outputs:
            present = torch.tensor([bool(str(t).strip()) for t in batch["text"]], device=outputs["text"].mask.device)
            if not bool(present.all()):
                outputs["text"] = replace(outputs["text"], mask=outputs["text"].mask & present[:, None])
        if self.training and self.modality_dropout > 0 and len(outputs) > 1:
            outputs = self._drop_modalities(outputs)
        return outputs

    def _drop_modalities(self, outputs: dict[str, EncoderOutput]) -> dict[str, EncoderOutput]:
        """With probability ``modality_dropout`` per sample, hide one modality it has (never all)."""
        names = list(outputs)
        reference = outputs[names[0]].mask
        present = torch.stack([outputs[m].mask.any(1) for m in names])  # [M,B]
        drop = torch.rand(reference.shape[0], device=reference.device) < self.modality_dropout
        drop &= present.sum(0) > 1
        choice = torch.multinomial(present.T.float() + 1e-9, 1).squeeze(1)  # a present modality per sample
        for index, m in enumerate(names):
            hidden = drop & (choice == index)
            if bool(hidden.any()):
                outputs[m] = replace(outputs[m], mask=outputs[m].mask & ~hidden[:, None])
        return outputs

    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        """Move only the tensors; Lightning's generic walk over every string of a batch
        (keys, speakers, transcripts) costs more than a cached-feature training step."""
        return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def forward(self, batch: dict):
        return self.head(self.encode(batch), batch.get("label"))

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        output = self(batch)
        values = self.objective.regress(output)
        parts = self.objective.losses(output, values, batch)
        loss = self.objective.combine(parts)
        total = loss + sum(output.aux_losses.values(), torch.zeros((), device=loss.device))
        size = len(batch["key"])
        self.log(f"{stage}/loss", loss, batch_size=size, prog_bar=stage == "train",
                 on_step=stage == "train", on_epoch=True)
        logged = {**output.aux_losses, **output.logs, **({f"loss_{k}": v for k, v in parts.items()}
                                                        if len(parts) > 1 else {})}
        for name, value in logged.items():
            self.log(f"{stage}/{name}", value, batch_size=size, on_epoch=True)
        if stage != "train":
            finite = torch.isfinite(output.logits.detach()).all(-1)
            if values is not None:
                finite &= torch.isfinite(values.detach()).all(-1)
            self._nonfinite[stage] += int((~finite).sum())
            self.objective.update(stage, output, values, batch)
        if stage == "test":
            self.test_predictions += self.objective.rows(output, values, batch)
        return total

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_index: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_index: int) -> None:
        self._shared_step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.test_predictions = []

    def _close_epoch(self, stage: str) -> None:
        summary = self.objective.summary(stage)
        bad, self._nonfinite[stage] = self._nonfinite[stage], 0
        if bad:
            message = (f"{bad} of {summary['n']} {'test' if stage == 'test' else 'validation'} utterances got "
                       "non-finite scores (NaN or infinity) from the model, so their predictions mean nothing "
                       "(a diverged run, or fp16 overflow: try bf16-mixed or a lower learning rate)")
            if stage == "test":  # never publish metrics over them
                raise NonFiniteScoresError(message)
            log.error("%s; this epoch's validation metrics count whatever argmax gave them", message)
        summary["nonfinite"] = bad
        self.results[stage] = summary
        for name, value in self.objective.logged(summary).items():
            self.log(f"{stage}/{name}", value, prog_bar=name == self.objective.selection, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._close_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._close_epoch("test")
        self.test_predictions = gather_rows(self.test_predictions)

    # -- optimisation --------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        """AdamW groups. Three learning rates: new weights (heads, layer mixers, encoders trained
        from scratch), LoRA adapters, and pretrained weights being fine-tuned (top_k / full).

        With ``optim.layer_decay=d < 1`` (layer-wise learning-rate decay), a fine-tuned
        pretrained weight in the k-th layer from the top of its encoder's ``layer_stack``
        gets ``encoder_lr * d**k``; weights below the stack (embeddings, convolutions)
        get ``d**len(stack)``.
        """
        decay = float(self.optim.get("layer_decay", 1.0))
        depth_of: dict[int, int] = {}
        below_stack: dict[str, int] = {}
        if decay < 1.0:
            for modality, encoder in self.encoders.items():
                try:
                    stack = list(encoder.layer_stack())
                except TypeError:
                    continue
                below_stack[modality] = len(stack)
                for depth, layer in enumerate(reversed(stack)):
                    for parameter in layer.parameters():
                        depth_of[id(parameter)] = depth
        groups: dict[tuple[str, int], list] = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            group = self._learning_rate_group(name)
            depth = depth_of.get(id(parameter), below_stack.get(name.split(".")[1], 0)) if group == "encoder_lr" else 0
            groups.setdefault((group, depth), []).append(parameter)
        return [{"params": params, "lr": self.optim[key] * (decay ** depth if key == "encoder_lr" else 1.0)}
                for (key, depth), params in sorted(groups.items())]

    def _learning_rate_group(self, name: str) -> str:
        """``lr`` (new weights), ``lora_lr`` (adapters) or ``encoder_lr`` (pretrained weights)."""
        parts = name.split(".")
        encoder = self.encoders[parts[1]] if parts[0] == "encoders" else None
        if encoder is None or encoder.pretrained_source is None or parts[2] == "mixer":
            return "lr"
        return "lora_lr" if "lora_" in name else "encoder_lr"

    def configure_optimizers(self):
        groups = self.parameter_groups()
        optimizer = torch.optim.AdamW(groups, weight_decay=self.optim["weight_decay"])
        if self.optim["scheduler"] == "constant":
            return optimizer
        if self.optim["scheduler"] != "cosine":
            raise InvalidInput(f"model.optim.scheduler must be 'cosine' or 'constant', got {self.optim['scheduler']!r}")
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.optim["warmup_ratio"] * total)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints ---------------------------------------------------------------------
    def _external_encoders(self) -> dict[str, Encoder]:
        """Encoders loaded from a path: their fixed (never trained) weights stay out of checkpoints."""
        return {m: e for m, e in self.encoders.items() if e.pretrained_source is not None}

    def _external_keys(self) -> set[str]:
        return {f"encoders.{m}.{name}" for m, e in self._external_encoders().items() for name in e.fixed_weights()}

    def _source(self, modality: str) -> dict:
        encoder = self.encoders[modality]
        return {"path": encoder.pretrained_source, "fingerprint": encoder.source_fingerprint()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        external = self._external_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in external}
        checkpoint["mmemo_external_encoders"] = {m: self._source(m) for m in self._external_encoders()}
        checkpoint["mmemo_classes"] = self.classes
        checkpoint["mmemo_model_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        checkpoint["mmemo_run_config"] = self.run_config
        checkpoint["mmemo_head_format"] = HEAD_FORMAT

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        expected = set(self.state_dict()) - self._external_keys()
        missing = sorted(expected - set(checkpoint["state_dict"]))
        if missing:
            raise KeyError(f"checkpoint lacks {len(missing)} trained weights, e.g. {missing[:3]}")
        for modality, source in checkpoint.get("mmemo_external_encoders", {}).items():
            if modality in self.encoders and self._source(modality)["fingerprint"] != source["fingerprint"]:
                raise InvalidInput(
                    f"the frozen {modality} encoder at {source['path']} has different weights from the "
                    f"ones this checkpoint was trained with (fingerprint {self._source(modality)['fingerprint']} "
                    f"!= {source['fingerprint']}); point model.{modality}.path at the original weights"
                )


def gather_rows(rows: list[dict]) -> list[dict]:
    """Every process's rows under DDP (each rank tested its own share of batches), else ``rows``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    shares: list = [None] * dist.get_world_size()
    dist.all_gather_object(shares, rows)
    return [row for share in shares for row in share]


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> EmotionClassifier:
    """Load any mmemo checkpoint for evaluation or prediction (same path everywhere).

    The file is read as untrusted data (:func:`~mmemo.training.checkpoints.read_checkpoint`:
    no code runs, stored configs may only build mmemo's own classes); any problem with it is
    a :class:`~mmemo.training.checkpoints.CheckpointError` naming the file.
    """
    checkpoint = read_checkpoint(path, map_location)
    try:
        hparams = checkpoint["hyper_parameters"]
        if checkpoint.get("mmemo_head_format", 1) < HEAD_FORMAT:
            hparams = legacy_head_options(hparams)
        model = model_class(checkpoint.get("mmemo_model_class"))(**hparams)
        checkpoint["state_dict"] = legacy_state_keys(checkpoint["state_dict"])
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"], strict=False)
    except OSError:
        raise  # e.g. a frozen encoder's weights missing at their recorded path: its own message
    except Exception as error:  # noqa: BLE001 - a crafted or foreign checkpoint can fail anywhere here
        raise CheckpointError(path, f"cannot rebuild the model it describes ({type(error).__name__}: "
                                    f"{str(error)[:300]})") from None
    model.run_config = checkpoint.get("mmemo_run_config") or {}
    return model.eval()


def legacy_head_options(hparams: dict) -> dict:
    """Checkpoints written before heads standardised and pooled mean+std (head format 1) rebuild as trained."""
    fusion = hparams.get("fusion")
    if not isinstance(fusion, dict) or "name" not in fusion:
        return hparams
    from mmemo.fusion.base import head_needs_frames

    old = {"normalize": False} if head_needs_frames(fusion["name"]) else {"normalize": False, "pooling": "mean"}
    return {**hparams, "fusion": {**fusion, **old}}


def model_class(qualified: str | None) -> type[EmotionClassifier]:
    """The EmotionClassifier subclass a checkpoint was saved from (only mmemo's own classes)."""
    if not qualified:
        return EmotionClassifier
    if not isinstance(qualified, str):
        raise InvalidInput(f"checkpoint names model class {qualified!r}, which is not a class name")
    module_name, _, class_name = qualified.rpartition(".")
    if not module_name.startswith("mmemo."):
        raise InvalidInput(f"checkpoint names model class {qualified!r}, which is not an mmemo class")
    import importlib

    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, EmotionClassifier)):
        raise InvalidInput(f"checkpoint names model class {qualified!r}, which is not an EmotionClassifier")
    return cls
