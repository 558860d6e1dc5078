"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``, 99.38 % on
LFW; code Boost-licensed, weights CC0), as packaged by face_recognition. The teacher of
facegate's first encoder, kept as a third option.

    pip install dlib-bin face-recognition-models && pip install --no-deps face_recognition

dlib aligns with its own 5-point model inside a face box; on our 112-px ArcFace crop
(upscaled to 224) the face sits at TEACHER_BOX, the median dlib HOG box over LFW crops.
dlib's vectors share a strong common direction, which :func:`center` removes.
"""

from __future__ import annotations

import numpy as np

from model_build.teachers.base import TeacherError, TeacherInfo, unit_rows

TEACHER_SIZE = 224
TEACHER_BOX = (46, 188, 189, 46)  # top, right, bottom, left on the 224-px crop


class DlibTeacher:
    info = TeacherInfo("dlib", "dlib_face_recognition_resnet_model_v1", 128,
                       "Boost Software License (code), CC0 (weights)", "PyPI face-recognition-models")

    def __init__(self):
        try:
            import face_recognition  # noqa: F401
        except ImportError as exc:
            raise TeacherError("the dlib teacher needs face_recognition: pip install dlib-bin "
                               "face-recognition-models && pip install --no-deps face_recognition") from exc

    def embed(self, crops: np.ndarray) -> np.ndarray:
        import cv2
        import face_recognition

        crops = np.asarray(crops)
        out = np.full((len(crops), 128), np.nan, np.float32)
        for i, crop in enumerate(crops):
            up = cv2.resize(crop, (TEACHER_SIZE, TEACHER_SIZE), interpolation=cv2.INTER_CUBIC)
            enc = face_recognition.face_encodings(np.dstack([up] * 3), [TEACHER_BOX])
            if enc:
                out[i] = enc[0]
        return unit_rows(out)
