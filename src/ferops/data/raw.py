"""`RawData`: what every source decodes into (uint8 [N, 48, 48] images + labels, usage, ids)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ferops.data.constants import FER_CLASSES, IMAGE_SIZE, USAGES
from ferops.data.validation import DataIssue


@dataclass(eq=False)
class RawData:
    """Decoded dataset rows (see docs/architecture.md, "Data contracts").

    ``labels`` index ``class_names`` (the FER-7 names for sources; a `ClassMap` renames them);
    ``soft`` holds per-class probabilities for soft-label sources; ``usage`` is train/val/test per row;
    ``ids`` identify rows in reports; ``quarantine`` lists rows left out by ``on_bad_rows=skip``;
    ``stats`` holds source-specific counts (e.g. rows dropped by the FER+ label policy);
    ``source_index`` is the 0-based data-record index in the source file (used to join FER+ votes).
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    ids: np.ndarray
    name: str
    soft: np.ndarray | None = None
    class_names: tuple[str, ...] = FER_CLASSES
    quarantine: list[DataIssue] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    source_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        self.images = np.asarray(self.images, dtype=np.uint8).reshape(n, IMAGE_SIZE, IMAGE_SIZE)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(n)
        self.usage = np.asarray(self.usage, dtype="<U5").reshape(n)
        self.ids = np.asarray(self.ids, dtype=str).reshape(n)
        self.class_names = tuple(self.class_names)
        if self.soft is not None:
            self.soft = np.asarray(self.soft, dtype=np.float32).reshape(n, len(self.class_names))
        if self.source_index is not None:
            self.source_index = np.asarray(self.source_index, dtype=np.int64).reshape(n)
        bad_usage = set(np.unique(self.usage).tolist()) - set(USAGES)
        if bad_usage:
            raise ValueError(f"{self.name}: usage values must be in {USAGES}, got {sorted(bad_usage)}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(f"{self.name}: labels outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.images)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the decoded arrays (images, labels, soft labels, usage) and the class names."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.tobytes())
        if self.soft is not None:
            h.update(self.soft.tobytes())
        h.update("\n".join(self.usage.tolist()).encode())
        h.update("\n".join(self.class_names).encode())
        return h.hexdigest()

    def subset(self, index: np.ndarray) -> RawData:
        """Rows selected by an index or boolean mask (quarantine and stats are kept)."""
        index = np.asarray(index)
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            usage=self.usage[index],
            ids=self.ids[index],
            soft=None if self.soft is None else self.soft[index],
            source_index=None if self.source_index is None else self.source_index[index],
            quarantine=list(self.quarantine),
            stats=dict(self.stats),
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per usage and class name."""
        out = {}
        for usage in USAGES:
            lab = self.labels[self.usage == usage]
            if len(lab):
                out[usage] = {c: int(n) for c, n in zip(self.class_names, np.bincount(lab, minlength=len(self.class_names)))}
        return out

    # -- cache (de)serialisation
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"images": self.images, "labels": self.labels, "usage": self.usage, "ids": self.ids}
        if self.soft is not None:
            arrays["soft"] = self.soft
        if self.source_index is not None:
            arrays["source_index"] = self.source_index
        meta = {
            "name": self.name,
            "class_names": list(self.class_names),
            "quarantine": [q.to_dict() for q in self.quarantine],
            "stats": self.stats,
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> RawData:
        return cls(
            images=arrays["images"],
            labels=arrays["labels"],
            usage=arrays["usage"],
            ids=arrays["ids"],
            name=meta["name"],
            soft=arrays.get("soft"),
            class_names=tuple(meta["class_names"]),
            quarantine=[DataIssue(**q) for q in meta["quarantine"]],
            stats=meta["stats"],
            source_index=arrays.get("source_index"),
        )
