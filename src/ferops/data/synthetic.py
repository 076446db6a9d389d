"""Procedural 48x48 grayscale faces for the 7 FER expressions: the embedded default data set.

Lets the whole project run on a fresh machine with no download. Each face is drawn from soft-edged
primitives in face coordinates (oval, eyes, brows, nose, mouth as a curved, possibly open lens), then
posed (shift, rotation, scale), lit (gain + linear gradient), corrupted (Gaussian noise, random occlusion
patch) and quantised to uint8.

Expressions are parameter vectors (mouth curve/opening/width/asymmetry, eye opening, brow raise and
inner-brow offset, nose wrinkle), e.g. happy = upturned mouth, sad = downturned mouth + raised inner
brows, surprise = round open mouth + raised brows + wide eyes, angry = lowered inner brows + tight mouth,
fear = raised brows + open stretched mouth, disgust = raised, asymmetric upper lip + wrinkled nose,
neutral = flat. Every sample has a random intensity (how far from neutral it is) and per-parameter
jitter, so classes overlap: a small CNN learns it well above chance but not perfectly.

Deterministic: the same options and seed give byte-identical arrays (numpy PCG64, float32 arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferops.data.cached_source import Source
from ferops.data.constants import FER_CLASSES, IMAGE_SIZE
from ferops.data.raw import RawData

# Parameter vectors per expression:
#   curve: mouth centre below its corners (+ smile, - frown), px
#   open: mouth opening, px; width: mouth half-width, px; asym: lip tilt (disgust)
#   eye: eye half-height, px; raise: brow raise, px; inner: inner-brow drop (+ lowered/angry, - raised/sad)
#   wrinkle: nose wrinkle strength 0..1
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": dict(curve=0.0, open=0.0, width=6.0, asym=0.0, eye=1.8, raise_=0.0, inner=0.0, wrinkle=0.0),
    "angry": dict(curve=-0.8, open=0.3, width=4.8, asym=0.0, eye=1.3, raise_=-1.2, inner=2.2, wrinkle=0.3),
    "disgust": dict(curve=-1.0, open=1.0, width=5.5, asym=1.8, eye=1.1, raise_=-0.8, inner=1.0, wrinkle=1.0),
    "fear": dict(curve=-0.8, open=2.6, width=7.0, asym=0.0, eye=2.7, raise_=1.8, inner=-1.5, wrinkle=0.0),
    "happy": dict(curve=2.6, open=1.0, width=7.5, asym=0.0, eye=1.4, raise_=0.3, inner=0.0, wrinkle=0.0),
    "sad": dict(curve=-2.0, open=0.0, width=5.5, asym=0.0, eye=1.4, raise_=0.0, inner=-2.0, wrinkle=0.0),
    "surprise": dict(curve=0.0, open=4.5, width=3.8, asym=0.0, eye=2.9, raise_=2.6, inner=0.0, wrinkle=0.0),
}
PARAMS = _KEYS = ("curve", "open", "width", "asym", "eye", "raise_", "inner", "wrinkle")
# per-parameter jitter (std at difficulty 1) and hard limits
_JITTER = np.array([0.7, 0.7, 0.8, 0.6, 0.35, 0.7, 0.7, 0.25], np.float32)
_LO = np.array([-4.0, 0.0, 3.0, -3.0, 0.5, -3.0, -3.5, 0.0], np.float32)
_HI = np.array([4.0, 7.0, 10.0, 3.0, 3.6, 4.0, 3.5, 1.5], np.float32)


def _expression_matrix(class_names: Sequence[str]) -> np.ndarray:
    return np.array([[EXPRESSIONS[c][k] for k in _KEYS] for c in class_names], np.float32)


def _soft(d: np.ndarray) -> np.ndarray:
    """Coverage of a shape from a signed distance in px (negative inside), 1 px anti-aliased edge."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _ellipse_sd(u, v, cu, cv, a, b):
    r = np.sqrt(((u - cu) / a) ** 2 + ((v - cv) / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def _segment_sd(u, v, au, av, bu, bv, half):
    du, dv = bu - au, bv - av
    t = np.clip(((u - au) * du + (v - av) * dv) / (du * du + dv * dv + 1e-6), 0.0, 1.0)
    return np.hypot(u - (au + t * du), v - (av + t * dv)) - half


def _paint(img, alpha, value):
    img *= 1.0 - alpha
    img += alpha * value


def render_faces(params: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0, occlusion_p: float = 0.25) -> np.ndarray:
    """Draw faces for expression parameter rows [N, 8] (order `_KEYS`) -> uint8 [N, 48, 48]."""
    n = len(params)
    f32 = np.float32

    def col(x):  # per-sample scalar -> broadcastable [N, 1, 1]
        return np.asarray(x, f32).reshape(n, 1, 1)

    def uni(lo, hi):
        return col(rng.uniform(lo, hi, n))

    # nuisance draws (fixed order keeps determinism)
    shift_u, shift_v = uni(-3, 3) * difficulty, uni(-3, 3) * difficulty
    angle = uni(-12, 12) * difficulty * (np.pi / 180)
    scale = uni(0.88, 1.12)
    face_a, face_b = uni(14.5, 17.5), uni(18.5, 21.5)
    skin, bg = uni(130, 205), uni(25, 120)
    hair = rng.random(n) < 0.6
    hair_val = uni(10, 70)
    eye_sep, eye_v = uni(6.2, 7.6), uni(-4.8, -3.2)
    mouth_v = uni(8.5, 10.5)
    grad_dir = rng.uniform(0, 2 * np.pi, n)
    grad_amp = uni(0, 45) * difficulty
    gain = uni(0.75, 1.2)
    noise_sd = uni(2, 10) * difficulty
    occ = rng.random(n) < occlusion_p
    occ_cu, occ_cv = uni(-14, 14), uni(-14, 16)
    occ_w, occ_h = uni(5, 12), uni(5, 12)
    occ_val = uni(0, 255)
    noise = rng.standard_normal((n, IMAGE_SIZE, IMAGE_SIZE), dtype=f32)

    p = [col(params[:, k]) for k in range(params.shape[1])]
    curve, opening, width, asym, eye, raise_, inner, wrinkle = p

    # pixel grid -> face coordinates (inverse pose)
    ys, xs = np.meshgrid(
        np.arange(IMAGE_SIZE, dtype=f32) + 0.5 - IMAGE_SIZE / 2,
        np.arange(IMAGE_SIZE, dtype=f32) + 0.5 - IMAGE_SIZE / 2,
        indexing="ij",
    )
    x, y = xs[None] - shift_u, ys[None] - shift_v
    c, s = np.cos(angle), np.sin(angle)
    u = (c * x + s * y) / scale
    v = (-s * x + c * y) / scale

    img = np.broadcast_to(bg, (n, IMAGE_SIZE, IMAGE_SIZE)).astype(f32)
    # hair cap behind the face, then the face oval
    _paint(img, _soft(_ellipse_sd(u, v, 0.0, -3.0, face_a + 1.8, face_b + 1.5)) * col(hair), hair_val)
    face = _soft(_ellipse_sd(u, v, 0.0, 0.0, face_a, face_b))
    _paint(img, face, skin)
    # shading towards the jaw gives the face some relief
    img -= face * np.clip(v / face_b, 0, 1) * 18.0

    dark = skin * 0.35
    for side in (-1.0, 1.0):
        cu = side * eye_sep
        # eyes: sclera and iris/pupil
        _paint(img, _soft(_ellipse_sd(u, v, cu, eye_v, 2.9, eye + 0.2)), np.minimum(skin + 40, 250))
        _paint(img, _soft(_ellipse_sd(u, v, cu, eye_v, 1.6, np.minimum(eye, 1.6) + 0.05)), 30.0)
        # brows: inner end at the nose side, lowered by `inner`, both ends raised by `raise_`
        base = eye_v - 4.2 - raise_
        _paint(
            img,
            _soft(
                _segment_sd(u, v, side * (eye_sep - 3.2), base + inner * 0.6, side * (eye_sep + 3.4), base - inner * 0.25, 0.9)
            ),
            dark,
        )
    # nose: a soft shadow and nostrils; disgust wrinkles across the bridge
    _paint(img, _soft(_ellipse_sd(u, v, 0.3, 1.3, 0.6, 2.8)) * 0.45, dark)
    wrinkle_alpha = np.clip(wrinkle, 0, 1)
    for side in (-1.0, 1.0):
        _paint(img, _soft(_ellipse_sd(u, v, side * 1.4, 4.6, 0.9, 0.6)) * 0.7, dark)
        _paint(img, _soft(_ellipse_sd(u, v, side * 1.8, -1.6, 1.6, 0.45)) * wrinkle_alpha, dark)

    # mouth: centre line v = mouth_v + curve * (1 - t^2) + asym * t (t = u / width), opened into a lens
    t = u / width
    inside = np.clip(1.0 - t * t, 0.0, None)
    centre = mouth_v + curve * inside - curve * 0.5 + asym * t - asym * np.abs(t) * 0.5
    half_open = 0.5 * opening * np.sqrt(inside)
    d_lips = np.maximum(np.abs(v - centre) - half_open - 0.6, (np.abs(u) - width) * 1.0)
    _paint(img, _soft(d_lips), skin * 0.45)
    d_hole = np.maximum(np.abs(v - centre) - half_open + 0.15, np.abs(u) - width + 0.8)
    _paint(img, _soft(d_hole) * np.clip(opening - 0.3, 0, 1), 20.0)

    # lighting, occlusion, noise
    gu, gv = col(np.cos(grad_dir)), col(np.sin(grad_dir))
    img = img * gain + grad_amp * (gu * xs[None] + gv * ys[None]) / (IMAGE_SIZE / 2)
    occ_mask = (np.abs(xs[None] - occ_cu) < occ_w / 2) & (np.abs(ys[None] - occ_cv) < occ_h / 2) & col(occ).astype(bool)
    img = np.where(occ_mask, occ_val, img)
    img += noise * noise_sd
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def generate(
    n_per_class: int = 400,
    seed: int = 0,
    class_names: Sequence[str] = FER_CLASSES,
    difficulty: float = 1.0,
    occlusion_p: float = 0.25,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` faces of each class, class-major order -> (uint8 [N, 48, 48], int64 labels [N])."""
    rng = np.random.default_rng(seed)
    means = _expression_matrix(class_names)
    labels = np.repeat(np.arange(len(class_names), dtype=np.int64), n_per_class)
    n = len(labels)
    # intensity: how far the face is from neutral (weak expressions overlap with neutral)
    intensity = rng.uniform(0.35, 1.25, n).astype(np.float32)[:, None]
    neutral = _expression_matrix(["neutral"])
    params = neutral + intensity * (means[labels] - neutral)
    params += rng.standard_normal(params.shape, dtype=np.float32) * _JITTER * np.float32(difficulty)
    params = np.clip(params, _LO, _HI)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for start in range(0, n, chunk):
        images[start : start + chunk] = render_faces(params[start : start + chunk], rng, difficulty, occlusion_p)
    return images, labels


class SyntheticFaces(Source):
    """The embedded synthetic source: ``n_per_class`` faces per FER-7 class, usage split per class.

    ``usage_fractions`` (train, val, test) assign the rows of each class in order (e.g. 0.8/0.1/0.1 of
    400 -> 320/40/40). ``on_bad_rows`` and ``cache_dir`` are accepted for a uniform config and unused
    (generation of 2800 faces takes well under a second).
    """

    def __init__(
        self,
        n_per_class: int = 400,
        usage_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        difficulty: float = 1.0,
        occlusion_p: float = 0.25,
        name: str = "synthetic",
        on_bad_rows: str = "error",
        cache_dir: str | None = None,
    ):
        fr = np.asarray(usage_fractions, float)
        if fr.shape != (3,) or (fr < 0).any() or not np.isclose(fr.sum(), 1.0):
            raise ValueError(f"usage_fractions must be 3 non-negative numbers summing to 1, got {list(usage_fractions)}")
        self.n_per_class, self.fractions, self.seed = int(n_per_class), fr, int(seed)
        self.difficulty, self.occlusion_p, self.name = float(difficulty), float(occlusion_p), name
        self.on_bad_rows, self.cache_dir = on_bad_rows, None

    def decode(self) -> RawData:
        images, labels = generate(self.n_per_class, self.seed, FER_CLASSES, self.difficulty, self.occlusion_p)
        n_val = round(self.n_per_class * self.fractions[1])
        n_test = round(self.n_per_class * self.fractions[2])
        per_class = np.array(["train"] * (self.n_per_class - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)
        k = np.tile(np.arange(self.n_per_class), len(FER_CLASSES))
        ids = np.array([f"synthetic:{FER_CLASSES[c]}:{i}" for c, i in zip(labels.tolist(), k.tolist())])
        return RawData(
            images=images,
            labels=labels,
            usage=np.tile(per_class, len(FER_CLASSES)),
            ids=ids,
            name=self.name,
            stats={"seed": self.seed, "n_per_class": self.n_per_class},
        )
