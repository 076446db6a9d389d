"""From a source to train/val/test arrays plus a data report: load -> class map -> split -> dedupe.

`prepare_dataset` is what `FERDataModule.setup` runs and what a ``prepare`` DVC stage can call to write
``stats.json`` (``PreparedData.report`` is JSON-ready) and the quarantine report.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferops.data.class_map import CLASSES_FROM_MAP, CLASSES_FROM_SOURCE, ClassMap, fer7
from ferops.data.constants import SPLITS
from ferops.data.raw import RawData
from ferops.data.splits import assign_splits
from ferops.data.validation import duplicate_report, image_hashes, summarize_issues, write_quarantine

log = logging.getLogger(__name__)

DEDUPE = ("none", "drop_from_eval")


@dataclass
class SplitData:
    images: np.ndarray  # uint8 [N, 48, 48]
    labels: np.ndarray  # int64 [N]
    soft: np.ndarray | None  # float32 [N, C] or None
    ids: np.ndarray  # str [N]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class PreparedData:
    name: str
    class_names: list[str]
    splits: dict[str, SplitData]
    report: dict
    fingerprint: str
    quarantined: int
    split_record: dict = field(default_factory=dict)  # see `split_record`; {} for data prepared before it
    class_set: dict = field(default_factory=dict)  # ClassMap.to_config() of the applied map; {} before it was kept

    @property
    def class_map(self) -> ClassMap:
        """The class map these splits were prepared with (data prepared before it was recorded: its names)."""
        if self.class_set:
            return ClassMap.from_config(self.class_set, f"{self.name}: prepared class_set")
        return ClassMap(self.class_names)


def _split_fingerprint(splits: Mapping[str, SplitData], class_names: list[str]) -> str:
    h = hashlib.sha256("\n".join(class_names).encode())
    for name in SPLITS:
        s = splits[name]
        h.update(name.encode())
        h.update(np.ascontiguousarray(s.images).tobytes())
        h.update(s.labels.tobytes())
        if s.soft is not None:
            h.update(s.soft.tobytes())
    return h.hexdigest()


def ids_digest(ids: np.ndarray) -> str:
    """Order-free digest of a split's row ids: equal digests mean the same rows."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:16]


def split_record(splits: Mapping[str, SplitData], sources: Mapping[str, str]) -> dict:
    """Which rows each split came from: ``{val_source, test_source, <split>_count, <split>_digest}``.

    Recorded on the run and on every registered version, so two runs can be checked for
    comparability (promotion compares ``val_digest``)."""
    record: dict = {f"{s}_source": sources.get(s, "unknown") for s in SPLITS}
    for s in SPLITS:
        record[f"{s}_count"] = len(splits[s])
        record[f"{s}_digest"] = ids_digest(splits[s].ids)
    return record


def _counts(labels: np.ndarray, class_names: list[str]) -> dict[str, int]:
    per = np.bincount(labels, minlength=len(class_names))
    return {**{c: int(n) for c, n in zip(class_names, per)}, "total": len(labels)}


def prepare_dataset(
    source: object,
    class_map: ClassMap | None = None,
    split: Mapping | None = None,
    dedupe: str = "none",
    quarantine_path: str | os.PathLike | None = None,
    classes: str = CLASSES_FROM_MAP,
) -> PreparedData:
    """Load ``source`` (anything with ``load() -> RawData``, or a RawData) and prepare the three splits.

    ``split`` holds `assign_splits` options (strategy, fractions, seed, val_fraction).
    ``dedupe="drop_from_eval"`` drops from val/test every image byte-identical to a train image.
    When ``quarantine_path`` is set the quarantine report is written there (header only when empty).
    ``classes``: ``class_map`` (``class_map`` decides) or ``from_source`` / ``from_folders`` (the
    source's own class names, sorted: `ClassMap.from_source`).
    """
    if dedupe not in DEDUPE:
        raise ValueError(f"dedupe must be one of {DEDUPE}, got {dedupe!r}")
    raw: RawData = source if isinstance(source, RawData) else source.load()
    if classes in CLASSES_FROM_SOURCE:
        class_map = ClassMap.from_source(raw.class_names, name=f"{raw.name}:{classes}")
        log.info("%s: classes from the data: %s", raw.name, class_map.names)
    elif classes != CLASSES_FROM_MAP:
        raise ValueError(f"data.classes must be {CLASSES_FROM_MAP!r} or one of {list(CLASSES_FROM_SOURCE)}, got {classes!r}")
    class_map = class_map or fer7()
    if quarantine_path:
        write_quarantine(raw.quarantine, quarantine_path)
    mapped = class_map.apply(raw)
    split_opts = dict(split or {})
    hashes = image_hashes(mapped.images)
    # byte-identical images stay on one side of every carved split
    result = assign_splits(mapped, **split_opts, groups=hashes)
    idx = dict(result.indices)

    dup = duplicate_report(
        {s: hashes[idx[s]] for s in SPLITS},
        {s: mapped.labels[idx[s]] for s in SPLITS},
        {s: mapped.ids[idx[s]] for s in SPLITS},
    )
    dropped = {"val": 0, "test": 0}
    if dedupe == "drop_from_eval":
        train_hashes = hashes[idx["train"]]
        for s in ("val", "test"):
            keep = ~np.isin(hashes[idx[s]], train_hashes)
            dropped[s] = int((~keep).sum())
            idx[s] = idx[s][keep]
        log.info("dedupe=drop_from_eval: dropped %s eval rows that duplicate train images", dropped)
    dup.update({"dedupe": dedupe, "dropped_from_eval": dropped})
    if dup["n_groups"]:
        log.warning(
            "%s: %d groups of byte-identical images (cross-split %s, within-split conflicting labels %s)",
            raw.name,
            dup["n_groups"],
            dup["cross_split"],
            dup["conflicting_labels"],
        )

    splits = {
        s: SplitData(
            images=mapped.images[i],
            labels=mapped.labels[i],
            soft=None if mapped.soft is None else mapped.soft[i],
            ids=mapped.ids[i],
        )
        for s, i in idx.items()
    }
    names = list(class_map.names)
    fingerprint = _split_fingerprint(splits, names)
    record = split_record(splits, result.sources)
    report = {
        "dataset": raw.name,
        "fingerprint": fingerprint,
        "source_fingerprint": raw.fingerprint,
        "class_names": names,
        "class_map": class_map.name,
        "class_set": class_map.to_config(),
        "soft_labels": mapped.soft is not None,
        "rows": {"source": len(raw), "after_class_map": len(mapped)},
        "counts": {s: _counts(splits[s].labels, names) for s in SPLITS},
        "split": {
            **{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in split_opts.items()},
            "notes": result.notes,
            "record": record,
        },
        "duplicates": dup,
        "quarantine": {
            **summarize_issues(raw.quarantine),
            "path": str(Path(quarantine_path)) if quarantine_path else None,
        },
        "source_stats": mapped.stats,
    }
    return PreparedData(
        name=raw.name,
        class_names=names,
        splits=splits,
        report=report,
        fingerprint=fingerprint,
        quarantined=len(raw.quarantine),
        split_record=record,
        class_set=class_map.to_config(),
    )


PREPARED_ARRAYS = "splits.npz"
PREPARED_META = "meta.json"


def save_prepared(data: PreparedData, out_dir: str | os.PathLike) -> Path:
    """Write the prepared splits (one npz) and their metadata (json) to ``out_dir``.

    Written to a sibling temp dir and swapped in at the end, so a failure leaves the previous
    outputs as they were."""
    import json
    import shutil

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays: dict[str, np.ndarray] = {}
    for name, s in data.splits.items():
        arrays[f"{name}/images"], arrays[f"{name}/labels"], arrays[f"{name}/ids"] = s.images, s.labels, s.ids.astype(str)
        if s.soft is not None:
            arrays[f"{name}/soft"] = s.soft
    np.savez(tmp / PREPARED_ARRAYS, **arrays)
    meta = {
        "name": data.name,
        "class_names": data.class_names,
        "fingerprint": data.fingerprint,
        "quarantined": data.quarantined,
        "split_record": data.split_record,
        "class_set": data.class_set,
        "report": data.report,
    }
    (tmp / PREPARED_META).write_text(json.dumps(meta, indent=2, default=str))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def load_prepared(prepared_dir: str | os.PathLike) -> PreparedData:
    """Read what `save_prepared` wrote (the `prepare` stage's output)."""
    import json

    prepared_dir = Path(prepared_dir)
    meta_path, arrays_path = prepared_dir / PREPARED_META, prepared_dir / PREPARED_ARRAYS
    for path in (meta_path, arrays_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no prepared data here; run the prepare stage (dvc repro prepare)")
    meta = json.loads(meta_path.read_text())
    with np.load(arrays_path) as z:
        splits = {
            s: SplitData(
                images=z[f"{s}/images"],
                labels=z[f"{s}/labels"].astype(np.int64),
                soft=z[f"{s}/soft"] if f"{s}/soft" in z.files else None,
                ids=z[f"{s}/ids"],
            )
            for s in SPLITS
        }
    return PreparedData(
        name=meta["name"],
        class_names=list(meta["class_names"]),
        splits=splits,
        report=meta["report"],
        fingerprint=meta["fingerprint"],
        quarantined=int(meta["quarantined"]),
        split_record=dict(meta.get("split_record") or {}),
        class_set=dict(meta.get("class_set") or {}),
    )
