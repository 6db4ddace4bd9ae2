"""Prediction with trained models: batch (``Predictor``), streaming (``StreamSession``), ``mmemo predict``."""

from mmemo.inference.predictions import Prediction
from mmemo.inference.predictor import Predictor, Segment, Timeline
from mmemo.inference.stream import StreamSession

__all__ = ["Prediction", "Predictor", "Segment", "StreamSession", "Timeline", "predict"]


def predict(*args, **kwargs):
    """``mmemo predict`` as a function (see :func:`mmemo.inference.run.predict`)."""
    from mmemo.inference.run import predict as run_predict

    return run_predict(*args, **kwargs)
