"""Build a tiny but real deployment bundle: Keras conv -> GAP -> dense(7), full-int8 TFLite.

Run as a script (``python make_bundle.py OUT_DIR``) so TensorFlow loads in its own process,
not in the test process. Writes model_int8.tflite, labels.txt, model_metadata.json (the runtime's
bundle contract) and a few uint8 face-like test images (images.npy).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def test_images(n: int = 12, seed: int = 1) -> np.ndarray:
    """Smooth blobs of varied brightness and position: varied labels from a random model."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    out = []
    for _ in range(n):
        cy, cx, r = rng.uniform(8, 40), rng.uniform(8, 40), rng.uniform(4, 20)
        base, amp = rng.uniform(0, 160), rng.uniform(-120, 200)
        img = base + amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) + rng.normal(0, 8, (48, 48))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def build(out_dir: Path) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((48, 48, 1), batch_size=1)
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = tf.keras.layers.Conv2D(16, 5, strides=2, activation="relu")(x)
    x = tf.keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(7, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=3.0))(x)
    out = tf.keras.layers.Softmax()(x)
    model = tf.keras.Model(inp, out)

    images = test_images(64, seed=7)
    images[0].flat[0], images[0].flat[1] = 0, 255  # input scale exactly 1

    def representative():
        for im in images:
            yield [im[None, ..., None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    flat = conv.convert()

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model_int8.tflite").write_bytes(flat)
    (out_dir / "labels.txt").write_text("\n".join(CLASSES) + "\n")

    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flat)
    interp.allocate_tensors()

    def spec(d: dict) -> dict:
        scale, zero = d["quantization"]
        return {
            "shape": [int(s) for s in d["shape"]],
            "dtype": np.dtype(d["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero)},
        }

    meta = {
        "format": "ferops-bundle",
        "format_version": 1,
        "model_file": "model_int8.tflite",
        "class_names": CLASSES,
        "input": spec(interp.get_input_details()[0]),
        "output": spec(interp.get_output_details()[0]),
        "preprocessing": {"input_size": 48, "input_range": [0, 255], "layout": "NHWC gray"},
        "softmax_in_model": True,
        "source": {"test": "tests/registry/make_bundle.py"},
    }
    (out_dir / "model_metadata.json").write_text(json.dumps(meta, indent=2))
    np.save(out_dir.parent / "images.npy", test_images())


if __name__ == "__main__":
    build(Path(sys.argv[1]))
