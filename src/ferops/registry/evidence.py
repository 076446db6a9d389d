"""Is the challenger better than the champion, or just luckier? A paired bootstrap on the same val rows.

With a few hundred val images a macro-F1 difference of 0.01 is well inside sampling error, so the
promotion does not compare two numbers: it resamples the val rows (with replacement, the same
resample for both models), recomputes the metric for each, and takes the percentile interval of
the difference. The challenger wins only when the interval's lower bound clears the margin.

Both versions' int8 predictions on the val rows are stored with the version: the export stage writes
``exports/eval_predictions.npz`` (row ids, labels, predicted class per format; see
`ferops.export.chain`), `register_model` logs it as a run artifact and points the version tags
``eval.predictions_uri`` / ``eval.predictions_sha256`` at it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ferops.registry import tags as T

log = logging.getLogger(__name__)

PRED_FORMAT = "tflite_int8"  # the deployable model's predictions
# version tag compared -> statistic on (labels, predictions); other metrics fall back to the tag values
STATISTICS = {T.INT8_MACRO_F1: "macro_f1", T.INT8_ACC: "accuracy"}


@dataclass
class Predictions:
    ids: np.ndarray  # str [N]
    labels: np.ndarray  # int64 [N]
    pred: dict[str, np.ndarray]  # format -> predicted class int64 [N]
    num_classes: int
    split: str = "val"


@dataclass
class Comparison:
    """The paired bootstrap of challenger - champion on `n` shared val rows."""

    statistic: str
    n: int
    challenger: float  # the statistic on the full rows
    champion: float
    delta: float
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int

    def interval(self) -> str:
        return f"{self.delta:+.4f} [{self.low:+.4f}, {self.high:+.4f}] ({self.confidence:.0%} paired bootstrap, {self.n} val rows, {self.resamples} resamples)"

    def to_dict(self) -> dict:
        return asdict(self)


# -- files -------------------------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_predictions(path: str | Path, ids, labels, pred: dict[str, np.ndarray], num_classes: int, split: str = "val") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"pred/{k}": np.asarray(v, dtype=np.int64) for k, v in pred.items()}
    with open(path, "wb") as f:  # np.savez would append .npz to a name without it
        np.savez(
            f,
            ids=np.asarray(ids).astype(str),
            labels=np.asarray(labels, dtype=np.int64),
            num_classes=np.int64(num_classes),
            split=np.str_(split),
            **arrays,
        )
    return path


def load_predictions(path: str | Path) -> Predictions:
    with np.load(path, allow_pickle=False) as z:
        pred = {k.removeprefix("pred/"): z[k].astype(np.int64) for k in z.files if k.startswith("pred/")}
        return Predictions(
            ids=z["ids"].astype(str),
            labels=z["labels"].astype(np.int64),
            pred=pred,
            num_classes=int(z["num_classes"]),
            split=str(z["split"]) if "split" in z.files else "val",
        )


# -- statistics --------------------------------------------------------------------------------
def _weighted_stat(name: str, y: np.ndarray, p: np.ndarray, w: np.ndarray, n_classes: int) -> np.ndarray:
    """The statistic for each row of weights `w` [B, N] (counts of each row in a resample)."""
    w = w.astype(np.float64)
    correct = (y == p).astype(np.float64)
    if name == "accuracy":
        return (w @ correct) / w.sum(1)
    if name != "macro_f1":
        raise ValueError(f"unknown statistic {name!r}")
    f1 = np.zeros((w.shape[0], n_classes))
    present = np.zeros((w.shape[0], n_classes), dtype=bool)
    for c in range(n_classes):
        tp = w @ ((y == c) & (p == c)).astype(np.float64)
        denom = w @ ((y == c).astype(np.float64) + (p == c).astype(np.float64))
        present[:, c] = denom > 0
        f1[:, c] = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    # ferops.evaluation.metrics.macro_f1: mean over the classes present in y_true or y_pred
    return (f1 * present).sum(1) / np.maximum(present.sum(1), 1)


def statistic(name: str, y: np.ndarray, p: np.ndarray, n_classes: int) -> float:
    return float(_weighted_stat(name, y, p, np.ones((1, len(y))), n_classes)[0])


def paired_bootstrap(
    labels: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    num_classes: int,
    stat: str = "macro_f1",
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 250,
) -> Comparison:
    """Percentile interval of stat(challenger) - stat(champion) over `resamples` paired resamples."""
    y, a, b = (np.asarray(x, dtype=np.int64) for x in (labels, challenger, champion))
    if not (len(y) == len(a) == len(b)) or len(y) == 0:
        raise ValueError(f"need the same, non-empty rows: {len(y)} labels, {len(a)} vs {len(b)} predictions")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    n = len(y)
    deltas = []
    for start in range(0, resamples, chunk):
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, resamples - start))
        deltas.append(_weighted_stat(stat, y, a, w, num_classes) - _weighted_stat(stat, y, b, w, num_classes))
    d = np.concatenate(deltas)
    alpha = (1 - confidence) / 2
    sa, sb = statistic(stat, y, a, num_classes), statistic(stat, y, b, num_classes)
    return Comparison(
        stat, n, sa, sb, sa - sb, float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha)), confidence, resamples, seed
    )


# -- versions ----------------------------------------------------------------------------------
def _download(uri: str, client) -> Predictions:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        tracking_uri = getattr(client, "tracking_uri", None)
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri)
        return load_predictions(local)


def compare_versions(
    client,
    challenger,
    champion,
    metric: str,
    resamples: int,
    confidence: float,
    seed: int = 0,
    load: Callable[[str, object], Predictions] = _download,
) -> tuple[Comparison | None, str | None]:
    """(comparison, None), or (None, why not) when it cannot be done (then promotion falls back to the
    tag values with a warning): metric without a row statistic, predictions missing, different rows."""
    stat = STATISTICS.get(metric)
    if stat is None:
        return None, f"{metric} has no per-row statistic for a bootstrap"
    if resamples <= 0:
        return None, "bootstrap switched off (registry.bootstrap_resamples = 0)"
    loaded = {}
    for role, mv in (("challenger", challenger), ("champion", champion)):
        uri = dict(mv.tags).get(T.PREDICTIONS_URI)
        if not uri:
            return None, f"{role} version {mv.version} has no stored val predictions ({T.PREDICTIONS_URI})"
        try:
            loaded[role] = load(uri, client)
        except Exception as err:
            return None, f"{role} version {mv.version}: cannot read its val predictions {uri}: {err}"
        if PRED_FORMAT not in loaded[role].pred:
            return None, f"{role} version {mv.version}: no {PRED_FORMAT} predictions in {uri}"
    a, b = loaded["challenger"], loaded["champion"]
    if a.split != "val" or b.split != "val":
        return None, f"predictions are on {a.split!r} / {b.split!r}, not on val"
    if len(a.ids) != len(set(a.ids)) or len(b.ids) != len(set(b.ids)):
        return None, "duplicate row ids in the stored predictions"
    if set(a.ids) != set(b.ids):
        common = len(set(a.ids) & set(b.ids))
        return None, f"the stored predictions cover different val rows ({len(a.ids)} vs {len(b.ids)}, {common} shared)"
    order = {r: i for i, r in enumerate(b.ids)}
    idx = np.array([order[r] for r in a.ids])
    if not np.array_equal(a.labels, b.labels[idx]):
        return None, "the stored predictions disagree on the labels of the same val rows"
    comp = paired_bootstrap(
        a.labels,
        a.pred[PRED_FORMAT],
        b.pred[PRED_FORMAT][idx],
        max(a.num_classes, b.num_classes),
        stat,
        resamples,
        confidence,
        seed,
    )
    return comp, None
