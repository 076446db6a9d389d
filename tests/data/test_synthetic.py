import time

import numpy as np

from ferops.data import FER_CLASSES, SyntheticFaces
from ferops.data.synthetic import generate


def test_deterministic_bytes_and_seed_matters():
    a = SyntheticFaces(n_per_class=12, seed=5).load()
    b = SyntheticFaces(n_per_class=12, seed=5).load()
    c = SyntheticFaces(n_per_class=12, seed=6).load()
    assert a.images.tobytes() == b.images.tobytes() and a.fingerprint == b.fingerprint
    assert a.images.tobytes() != c.images.tobytes()


def test_shapes_labels_usage_ids():
    raw = SyntheticFaces(n_per_class=20, usage_fractions=(0.8, 0.1, 0.1)).load()
    assert raw.images.shape == (140, 48, 48) and raw.images.dtype == np.uint8
    assert np.bincount(raw.labels).tolist() == [20] * 7
    for c in range(7):
        usage = raw.usage[raw.labels == c]
        assert (usage == "train").sum() == 16 and (usage == "val").sum() == 2 and (usage == "test").sum() == 2
    assert raw.ids[0] == "synthetic:angry:0" and raw.ids[-1] == "synthetic:neutral:19"
    assert len(set(raw.ids.tolist())) == 140
    assert len({img.tobytes() for img in raw.images}) == 140  # no two faces alike
    assert raw.images.std() > 20  # not blank


def _centroid_accuracy(images, labels, usage):
    x = images.reshape(len(images), -1).astype(np.float32)
    x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)
    tr = usage == "train"
    cent = np.stack([x[tr & (labels == c)].mean(0) for c in range(7)])
    pred = ((x[~tr][:, None] - cent[None]) ** 2).sum(-1).argmin(1)
    return (pred == labels[~tr]).mean()


def test_classes_differ():
    # with nuisances off, expressions alone separate the classes far above chance (1/7)
    clean = SyntheticFaces(n_per_class=40, seed=1, difficulty=0.0, occlusion_p=0.0, usage_fractions=(0.5, 0.25, 0.25)).load()
    assert _centroid_accuracy(clean.images, clean.labels, clean.usage) > 0.3
    # and the class-mean faces differ where the expression is drawn (mouth region)
    means = np.stack([clean.images[clean.labels == c, 28:42, 12:36].astype(float).mean(0) for c in range(7)])
    happy, sad = FER_CLASSES.index("happy"), FER_CLASSES.index("sad")
    assert np.abs(means[happy] - means[sad]).max() > 20


def test_generation_speed():
    t = time.process_time()
    images, _labels = generate(n_per_class=430, seed=0)  # ~3000 faces
    assert len(images) == 3010
    assert time.process_time() - t < 3.0
