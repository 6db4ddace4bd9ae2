"""What a prediction source is loaded into: encoders plus a head that scores any window of frames.

Two kinds of source share one interface, so the predictor, the stream and the
monitor never branch on where a model came from:

* an mmemo checkpoint, through :func:`mmemo.training.module.load_classifier` (the one loader);
* a FunASR emotion2vec(+) model directory or hub id, through
  :class:`~mmemo.encoders.emotion2vec.Emotion2vecEncoder`, keeping its 9-class head.
"""

from __future__ import annotations

import abc
from pathlib import Path

import torch

from mmemo.encoders.base import EncoderOutput, SpeechEncoder, TextEncoder
from mmemo.encoders.emotion2vec_checkpoints import CONFIG_FILE, WEIGHTS_FILE
from mmemo.errors import InvalidInput, MissingInput

#: File suffixes read as mmemo checkpoints.
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


class ScoringModel(abc.ABC):
    """Encoders and a head: ``logits(feats)`` for any modality subset, whole clips or windows.

    ``needs_frames`` is False when the head pools each modality first; then a window of frames
    can be passed as its moments (``EncoderOutput.moments``: mean and mean of squares), which
    gives the same logits.
    """

    classes: list[str]
    model_id: str
    speech: SpeechEncoder | None
    text: TextEncoder | None
    #: A video branch (face tracks; mmemo.inference.faces), None for most models.
    video = None
    needs_frames: bool
    #: Whether frame-level scores exist (the head can score a window of speech frames).
    supports_frames: bool = True
    #: Dimensions the model predicts (arousal, valence, ...; task=dimensional|multitask), [] for most.
    dimensions: list[str] = []

    @abc.abstractmethod
    def logits(self, feats: dict[str, EncoderOutput], batch: dict | None = None) -> torch.Tensor:
        """Class logits [B,C] for encoder outputs (``batch``: the raw inputs, for heads that read them),
        followed by the :attr:`dimensions`' values on [0, 1] when there are any: [B, C+D]."""

    def to(self, device: str | torch.device) -> ScoringModel:
        for module in self.modules():
            module.to(device)
        return self

    @abc.abstractmethod
    def modules(self) -> list[torch.nn.Module]:
        """The torch modules holding the weights (moved by :meth:`to`)."""


class Emotion2vecHeadModel(ScoringModel):
    """A FunASR emotion2vec+ directory: frames from the encoder, funasr's ``proj`` head on their mean."""

    needs_frames = False

    def __init__(self, source: str, **encoder_options):
        from mmemo.encoders.emotion2vec import Emotion2vecEncoder

        self.encoder = Emotion2vecEncoder(source, layer="last", trainable="frozen", **encoder_options)
        if not self.encoder.has_head:
            raise InvalidInput(f"{self.encoder.model_dir} has no classification head ({WEIGHTS_FILE} has no proj.*): "
                             "it is a pre-trained SSL model, so there is nothing to predict; train a head on its "
                             "features (model.speech=emotion2vec_base) and predict with that checkpoint")
        #: tokens.txt exactly as written (released models: "生气/angry", ...).
        self.raw_labels = list(self.encoder.labels)
        self.classes = display_names(self.raw_labels)
        self.model_id = str(source)
        self.speech, self.text = self.encoder, None
        self.encoder.eval()

    def modules(self) -> list[torch.nn.Module]:
        return [self.encoder]

    def logits(self, feats: dict[str, EncoderOutput], batch: dict | None = None) -> torch.Tensor:
        speech = feats["speech"]
        if speech.moments:  # a window's moments: funasr's head reads only the mean
            return self.encoder.classify(speech.frames[:, :1], speech.mask[:, :1])
        return self.encoder.classify(speech.frames, speech.mask)


class ClassifierModel(ScoringModel):
    """An mmemo ``EmotionClassifier``: its encoders and fusion head (text only when transcripts are given)."""

    def __init__(self, classifier: torch.nn.Module, model_id: str):
        self.classifier = classifier.eval()
        self.classes = list(classifier.classes)
        self.model_id = model_id
        self.speech = classifier.encoders["speech"] if "speech" in classifier.encoders else None
        self.text = classifier.encoders["text"] if "text" in classifier.encoders else None
        self.video = classifier.encoders["video"] if "video" in classifier.encoders else None
        self.needs_frames = bool(getattr(classifier.head, "needs_frames", True))
        self.supports_frames = bool(classifier.scores_frames) and self.speech is not None
        self.dimensions = list(getattr(classifier, "dimensions", None) or [])

    def modules(self) -> list[torch.nn.Module]:
        return [self.classifier]

    def logits(self, feats: dict[str, EncoderOutput], batch: dict | None = None) -> torch.Tensor:
        return self.classifier.score(feats, batch)


def display_names(labels: list[str]) -> list[str]:
    """Class names from tokens.txt, in its order: ``生气/angry`` -> ``angry``.

    The released emotion2vec+ models name classes "Chinese/English"; alert rules and
    tables use the English half. Labels without a slash stay as written, and if stripping
    would make two names equal, all stay as written.
    """
    names = [label.rsplit("/", 1)[-1].strip() if "/" in label else label for label in labels]
    return names if len(set(names)) == len(names) and all(names) else list(labels)


def is_funasr_dir(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def load_scoring_model(source: str | Path, device: str = "cpu", **options) -> ScoringModel:
    """An mmemo checkpoint file, a FunASR emotion2vec(+) directory, or a hub id (FunASR loader).

    ``options`` go to :class:`~mmemo.encoders.emotion2vec.Emotion2vecEncoder` for FunASR
    sources (e.g. ``compute_dtype="bfloat16"``). Offline, a hub id fails within seconds with
    download instructions (the encoder's own resolver).
    """
    from mmemo.training.module import load_classifier

    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        if options:
            raise InvalidInput(f"options {sorted(options)} apply to FunASR model directories, not to checkpoint {path}")
        return ClassifierModel(load_classifier(path, map_location=device), text).to(device)
    if path.is_dir():
        if not is_funasr_dir(path):
            raise MissingInput(f"{path} is a folder but not a FunASR model directory ({CONFIG_FILE} and "
                                    f"{WEIGHTS_FILE} expected); pass an mmemo checkpoint file (.ckpt) or a FunASR "
                                    "emotion2vec(+) folder")
        return Emotion2vecHeadModel(text, **options).to(device)
    if path.suffix in CHECKPOINT_SUFFIXES or text.startswith(("/", ".", "~")):
        raise MissingInput(f"model not found: {text} (expected an mmemo checkpoint, a FunASR model "
                                "directory or a hub id like iic/emotion2vec_plus_base)")
    return Emotion2vecHeadModel(text, **options).to(device)  # a hub id: resolved (or refused) by the encoder
