"""Class maps: turn the 7 FER ids of a `RawData` into the task's classes.

A map is the ordered list of task class ``names`` plus a ``mapping`` from FER-7 class names (or ids) to
task names. FER classes missing from the mapping are dropped (their rows leave the data set); several FER
classes mapped to one name are merged. Without a mapping, ``names`` must be FER-7 names and the map is
that subset. Soft labels are mapped by summing the columns of merged classes, discarding unmapped
columns and renormalising each row; a soft row's label becomes the argmax of its mapped distribution.

Configs: ``conf/data/class_map/{fer7,fer5,fer4,valence3}.yaml``; any custom map is one more yaml (or a
command-line override of ``data.class_map.names`` / ``data.class_map.mapping``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from ferops.data.constants import FER_CLASSES, class_id
from ferops.data.raw import RawData


class ClassMap:
    """``ClassMap(names, mapping=None, name=None)``; ``apply(raw) -> RawData`` in the task's label space."""

    def __init__(self, names: Sequence[str], mapping: Mapping[str | int, str] | None = None, name: str | None = None):
        self.names: list[str] = [str(n) for n in names]
        if len(set(self.names)) != len(self.names) or not self.names:
            raise ValueError(f"class map names must be unique and non-empty, got {self.names}")
        if mapping is None:
            mapping = {n: n for n in self.names}
        self.lookup = np.full(len(FER_CLASSES), -1, np.int64)  # FER id -> task id (-1: dropped)
        for src, dst in dict(mapping).items():
            fer = int(src) if isinstance(src, int) or str(src).isdigit() else class_id(str(src))
            if fer is None or not 0 <= fer < len(FER_CLASSES):
                raise ValueError(f"class map: unknown FER class {src!r} (expected one of {list(FER_CLASSES)} or 0..6)")
            if str(dst) not in self.names:
                raise ValueError(f"class map: target {dst!r} of {src!r} is not in names {self.names}")
            self.lookup[fer] = self.names.index(str(dst))
        unused = [n for i, n in enumerate(self.names) if i not in set(self.lookup.tolist())]
        if unused:
            raise ValueError(f"class map: names {unused} receive no FER class")
        self.name = name or f"{len(self.names)}class"

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def mapping(self) -> dict[str, str]:
        """FER-7 name -> task name for the kept FER classes."""
        return {FER_CLASSES[i]: self.names[t] for i, t in enumerate(self.lookup.tolist()) if t >= 0}

    def matrix(self) -> np.ndarray:
        """float32 [7, C] with a 1 where a FER class feeds a task class (soft labels: ``soft @ matrix``)."""
        m = np.zeros((len(FER_CLASSES), self.num_classes), np.float32)
        kept = self.lookup >= 0
        m[np.flatnonzero(kept), self.lookup[kept]] = 1.0
        return m

    def apply(self, raw: RawData) -> RawData:
        """Remap labels (and soft labels); rows whose FER class is unmapped are dropped.

        ``stats["class_map_dropped"]`` counts the dropped rows.
        """
        if tuple(raw.class_names) != FER_CLASSES:
            raise ValueError(f"{raw.name}: class maps apply to FER-7 labels, this data has {list(raw.class_names)}")
        new = self.lookup[raw.labels]
        keep = new >= 0
        out = raw.subset(keep)
        soft = None
        labels = new[keep]
        if raw.soft is not None:
            soft = raw.soft[keep] @ self.matrix()
            total = soft.sum(axis=1, keepdims=True)
            # a kept row always has mass on its own (mapped) class; guard anyway
            soft = np.where(total > 0, soft / np.maximum(total, 1e-12), np.eye(self.num_classes, dtype=np.float32)[labels])
            soft = soft.astype(np.float32)
            labels = soft.argmax(axis=1)
        stats = dict(out.stats)
        stats["class_map_dropped"] = int((~keep).sum())
        return replace(out, labels=labels, soft=soft, class_names=tuple(self.names), stats=stats)

    # Targets a stored class-map config may name: it is read from checkpoints and bundles made by
    # others, so it is never handed to hydra's instantiate (that would call any `_target_`).
    CONFIG_TARGETS = ("ferops.data.class_map.ClassMap", "ferops.data.ClassMap")

    @classmethod
    def from_config(cls, node: Mapping[str, object], where: str = "class_map") -> ClassMap:
        """The map a stored config (``{"names", "mapping", "name"}``, as in ``conf/data/class_map``)
        describes, built without instantiating anything."""
        if not isinstance(node, Mapping):
            raise ValueError(f"{where}: expected a mapping with 'names', got {type(node).__name__}")
        target = node.get("_target_")
        if target is not None and target not in cls.CONFIG_TARGETS:
            raise ValueError(f"{where}._target_={target!r}: a class map must be one of {list(cls.CONFIG_TARGETS)}")
        unknown = sorted(set(node) - {"_target_", "names", "mapping", "name"})
        if unknown or "names" not in node:
            raise ValueError(f"{where}: needs 'names' (and optionally 'mapping', 'name'), got keys {sorted(node)}")
        names, mapping = node["names"], node.get("mapping")
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ValueError(f"{where}.names: expected a list of class names, got {names!r}")
        if mapping is not None and not isinstance(mapping, Mapping):
            raise ValueError(f"{where}.mapping: expected FER class -> name, got {mapping!r}")
        name = node.get("name")
        return cls(list(names), None if mapping is None else dict(mapping), None if name is None else str(name))

    def to_config(self) -> dict[str, object]:
        """JSON-able ``{"name", "names", "mapping"}`` that :meth:`from_config` reads back."""
        return {"name": self.name, "names": list(self.names), "mapping": self.mapping}

    def __repr__(self) -> str:
        return f"ClassMap(name={self.name!r}, names={self.names}, mapping={self.mapping})"


def fer7() -> ClassMap:
    return ClassMap(list(FER_CLASSES), name="fer7")
