"""Finding, aligning and cropping the face in each sampled frame: a clip becomes a face track.

Two detectors ship their models inside their packages, so both work offline:

* ``mediapipe`` (default): MediaPipe 0.10.21's face mesh (its own face detector + 478 landmarks,
  irises included). The crop is aligned by a similarity transform that puts the two eye centres
  at fixed points, so head roll and distance are removed and the landmarks give the geometry.
* ``haar``: OpenCV's frontal-face Haar cascade (``cv2.data``; OpenCV below 5). A box, no
  landmarks: the crop is the enlarged box, not rotated.

A frame without a face is kept, masked (``mask`` False, a black crop), so time stays regular;
a track whose mask is all False is a clip with no face, i.e. a missing video modality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmemo.errors import InvalidInput, MissingDependency

DETECTORS = ("mediapipe", "haar")
#: Landmarks per face in MediaPipe's refined mesh (468 + 10 iris points).
MESH_POINTS = 478
#: Eye-contour landmark indices in MediaPipe's mesh (subject's right eye, then left eye).
RIGHT_EYE = (33, 133, 159, 145)
LEFT_EYE = (362, 263, 386, 374)
#: Where the eye centres land in an aligned crop (fractions of its side): a tight face crop
#: like FER2013's, forehead to chin.
EYE_Y, EYE_X = 0.36, (0.30, 0.70)


@dataclass
class FaceTrack:
    """Aligned face crops of one clip at a fixed rate.

    crops [T,S,S,3] uint8 RGB; mask [T] (a face was found); landmarks [T,478,3] float32 in
    crop-normalised coordinates (x, y in [0, 1] of the aligned crop, z at the same scale;
    zeros without a face or with the ``haar`` detector); times [T] seconds from the clip start.
    """

    crops: np.ndarray
    mask: np.ndarray
    landmarks: np.ndarray
    times: np.ndarray
    fps: float

    @property
    def has_face(self) -> bool:
        return bool(self.mask.any())

    def __len__(self) -> int:
        return int(self.mask.shape[0])


def _cv2():
    try:
        import cv2
    except ImportError as error:  # pragma: no cover - pinned in requirements
        raise MissingDependency("face detection needs OpenCV: pip install 'opencv-contrib-python-headless<5'") \
            from error
    return cv2


class FaceAligner:
    """Detects the largest face of each frame and returns its aligned crop (one detector per instance)."""

    def __init__(self, detector: str = "mediapipe", size: int = 112, min_confidence: float = 0.5):
        if detector not in DETECTORS:
            raise InvalidInput(f"video.detector must be one of {DETECTORS}, got {detector!r}")
        if not 16 <= int(size) <= 1024:
            raise InvalidInput(f"video.face_size must be between 16 and 1024 pixels, got {size}")
        if not 0.0 < float(min_confidence) < 1.0:
            raise InvalidInput(f"video.min_confidence must be in (0, 1), got {min_confidence}")
        self.detector = detector
        self.size = int(size)
        self.min_confidence = float(min_confidence)
        self._model = None

    def _mesh(self):
        if self._model is None:
            try:
                from mediapipe.python.solutions import face_mesh
            except ImportError as error:
                raise MissingDependency("video.detector=mediapipe needs mediapipe==0.10.21 (pinned in "
                                        "requirements; the 1.x releases no longer bundle the face mesh)") from error
            # static images: every frame is detected on its own, so a clip's track does not depend
            # on which clips were processed before it, nor on the order of its frames
            self._model = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                             min_detection_confidence=self.min_confidence)
        return self._model

    def _cascade(self):
        if self._model is None:
            cv2 = _cv2()
            if not hasattr(cv2, "CascadeClassifier"):
                raise MissingDependency("video.detector=haar needs OpenCV below 5 (5.0 has no CascadeClassifier)")
            self._model = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        return self._model

    def track(self, frames: np.ndarray, times: np.ndarray, fps: float) -> FaceTrack:
        """A :class:`FaceTrack` for [T,H,W,3] uint8 RGB frames."""
        count = frames.shape[0]
        crops = np.zeros((count, self.size, self.size, 3), np.uint8)
        landmarks = np.zeros((count, MESH_POINTS, 3), np.float32)
        mask = np.zeros(count, bool)
        for index, frame in enumerate(frames):
            found = self._mesh_face(frame) if self.detector == "mediapipe" else self._haar_face(frame)
            if found is not None:
                crops[index], landmarks[index] = found
                mask[index] = True
        return FaceTrack(crops, mask, landmarks, np.asarray(times, np.float32), float(fps))

    # -- detectors -----------------------------------------------------------------------
    def _mesh_face(self, frame: np.ndarray):
        result = self._mesh().process(np.ascontiguousarray(frame))
        if not result.multi_face_landmarks:
            return None
        height, width = frame.shape[:2]
        points = np.array([(p.x * width, p.y * height, p.z * width)
                           for p in result.multi_face_landmarks[0].landmark], np.float32)
        right = points[list(RIGHT_EYE), :2].mean(0)  # on the image's left
        left = points[list(LEFT_EYE), :2].mean(0)
        matrix = eye_alignment(right, left, self.size)
        crop = _cv2().warpAffine(frame, matrix, (self.size, self.size), flags=_cv2().INTER_LINEAR,
                                 borderMode=_cv2().BORDER_REPLICATE)
        xy = points[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        scale = float(np.hypot(*matrix[0, :2]))
        aligned = np.concatenate([xy, points[:, 2:] * scale], 1) / self.size
        return crop, aligned.astype(np.float32)

    def _haar_face(self, frame: np.ndarray):
        cv2 = _cv2()
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        boxes = self._cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                                 minSize=(max(24, min(grey.shape) // 10),) * 2)
        if len(boxes) == 0:
            return None
        x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
        side = int(max(w, h) * 1.1)
        cx, cy = x + w / 2, y + h / 2
        matrix = np.array([[self.size / side, 0, self.size / 2 - cx * self.size / side],
                           [0, self.size / side, self.size / 2 - cy * self.size / side]], np.float32)
        crop = cv2.warpAffine(frame, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        return crop, np.zeros((MESH_POINTS, 3), np.float32)


def eye_alignment(right_eye: np.ndarray, left_eye: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 similarity transform taking the eye centres (image coordinates) to their crop positions."""
    source = np.asarray(left_eye, np.float64) - np.asarray(right_eye, np.float64)
    target = np.array([(EYE_X[1] - EYE_X[0]) * size, 0.0])
    distance = float(np.hypot(*source))
    if distance < 1e-6:
        distance = 1e-6
    scale = float(np.hypot(*target)) / distance
    angle = np.arctan2(source[1], source[0])  # rotate the eye line onto the horizontal
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    anchor = np.array([EYE_X[0] * size, EYE_Y * size])
    shift = anchor - rotation @ np.asarray(right_eye, np.float64)
    return np.concatenate([rotation, shift[:, None]], 1).astype(np.float32)
