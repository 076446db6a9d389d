"""Small full-int8 TFLite classifiers built straight with TensorFlow (independent of the export chain),
for tests of the runtime, the predictor and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ["angry", "happy", "sad", "neutral"]  # the class names of the 4-output default


def int8_classifier(path: Path, io_dtype: str = "int8", n_classes: int = 4, seed: int = 0) -> None:
    """A fixed random conv -> relu -> mean -> dense net on raw 0..255 pixels, quantised to full int8
    (``io_dtype`` "int8" or "uint8" input/output), written to ``path``."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w = tf.constant(rng.normal(0, 0.05, (3, 3, 1, 8)).astype(np.float32))
    d = tf.constant(rng.normal(0, 1.0, (8, n_classes)).astype(np.float32))

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 48, 48, 1], tf.float32)])
        def __call__(self, x):
            h = tf.nn.relu(tf.nn.conv2d(x / 255.0 - 0.5, w, 1, "SAME"))
            return tf.matmul(tf.reduce_mean(h, axis=[1, 2]), d)

    net = Net()
    calib = rng.integers(0, 256, (32, 48, 48, 1)).astype(np.float32)
    calib[0].flat[0], calib[0].flat[1] = 0.0, 255.0
    conv = tf.lite.TFLiteConverter.from_concrete_functions([net.__call__.get_concrete_function()], net)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[io_dtype]
    path.write_bytes(conv.convert())
