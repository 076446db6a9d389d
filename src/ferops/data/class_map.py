"""Class maps (class sets): turn a source's own class names into the task's classes.

A source labels its rows in its own class names (``RawData.class_names``: the FER-7 names for the
FER2013 CSV, FER-7 + ``contempt`` for FER+ with ``contempt: keep``, the folder names for an image
folder). A class map is data: the ordered task class ``names`` plus a ``mapping`` from source class
names to task names, and optional ``aliases`` (other spellings of a source class). Names are
compared case-insensitively, after the aliases and the common spellings of `CLASS_ALIASES`
(``happiness`` is ``happy``). Source classes missing from the mapping are dropped (their rows leave
the data set, counted per class in ``stats``); several source classes mapped to one name are merged.
Without a mapping, each task name takes the source class of the same name. Soft labels are mapped by
summing the columns of merged classes, discarding unmapped columns and renormalising each row; a soft
row's label becomes the argmax of its mapped distribution.

Configs: ``conf/data/class_map/{fer7,fer5,fer4,valence3,ferplus8}.yaml``; any custom map is one more
yaml (or a command-line override of ``data.class_map.names`` / ``data.class_map.mapping``).
``data.classes=from_folders`` (or ``from_source``) instead takes the classes from the data itself
(:meth:`ClassMap.from_source`: the source's class names, sorted).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ferops.data.constants import CLASS_ALIASES, FER_CLASSES
from ferops.data.raw import RawData

log = logging.getLogger(__name__)

# `data.classes` values: the class_map group decides, or the data's own class names do.
CLASSES_FROM_MAP = "class_map"
CLASSES_FROM_SOURCE = ("from_source", "from_folders")


def canonical(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """The comparison key of a class name: lower-case, stripped, aliases resolved."""
    key = str(name).strip().lower()
    if aliases:
        key = {str(k).strip().lower(): str(v).strip().lower() for k, v in aliases.items()}.get(key, key)
    return CLASS_ALIASES.get(key, key)


@dataclass(frozen=True)
class ClassMatch:
    """How a class map met one data set's classes (:meth:`ClassMap.match`)."""

    lookup: np.ndarray  # source class id -> task id (-1: dropped)
    dropped: list[str]  # source classes the map drops
    missing: list[str]  # task classes no source class feeds
    unmatched_keys: list[str]  # mapping keys that name no source class


class ClassMap:
    """``ClassMap(names, mapping=None, name=None, aliases=None)``; ``apply(raw) -> RawData`` in the task's classes."""

    def __init__(
        self,
        names: Sequence[str],
        mapping: Mapping[Any, str] | None = None,  # source class name (or FER-7 id) -> task name
        name: str | None = None,
        aliases: Mapping[str, str] | None = None,
    ):
        self.names: list[str] = [str(n) for n in names]
        if len(set(self.names)) != len(self.names) or not self.names:
            raise ValueError(f"class map names must be unique and non-empty, got {self.names}")
        self.aliases: dict[str, str] = {str(k): str(v) for k, v in dict(aliases or {}).items()}
        if mapping is None:
            mapping = {n: n for n in self.names}
        self._mapping: dict[str, str] = {}  # canonical source name -> task name
        for src, dst in dict(mapping).items():
            if isinstance(src, int) or str(src).isdigit():  # FER-7 ids, as the FER2013 CSV numbers them
                if not 0 <= int(src) < len(FER_CLASSES):
                    raise ValueError(f"class map: FER class id {src!r} is outside 0..{len(FER_CLASSES) - 1}")
                src = FER_CLASSES[int(src)]
            if str(dst) not in self.names:
                raise ValueError(f"class map: target {dst!r} of {src!r} is not in names {self.names}")
            self._mapping[canonical(str(src), self.aliases)] = str(dst)
        unused = [n for n in self.names if n not in set(self._mapping.values())]
        if unused:
            raise ValueError(f"class map: names {unused} receive no source class")
        self.name = name or f"{len(self.names)}class"

    @classmethod
    def from_source(cls, class_names: Sequence[str], name: str = "from_source") -> ClassMap:
        """The data's own classes: its canonical class names, sorted (``data.classes=from_folders``)."""
        return cls(sorted({canonical(c) for c in class_names}), name=name)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def mapping(self) -> dict[str, str]:
        """Source class name (canonical) -> task name."""
        return dict(self._mapping)

    def match(self, class_names: Sequence[str]) -> ClassMatch:
        """Which task class each of a data set's classes feeds, and what does not meet."""
        keys = [canonical(c, self.aliases) for c in class_names]
        lookup = np.array([self.names.index(self._mapping[k]) if k in self._mapping else -1 for k in keys], np.int64)
        fed = set(lookup[lookup >= 0].tolist())
        return ClassMatch(
            lookup=lookup,
            dropped=[str(c) for c, t in zip(class_names, lookup.tolist()) if t < 0],
            missing=[n for i, n in enumerate(self.names) if i not in fed],
            unmatched_keys=sorted(set(self._mapping) - set(keys)),
        )

    def matrix(self, class_names: Sequence[str]) -> np.ndarray:
        """float32 [S, C] with a 1 where source class s feeds task class c (soft labels: ``soft @ matrix``)."""
        lookup = self.match(class_names).lookup
        m = np.zeros((len(lookup), self.num_classes), np.float32)
        kept = lookup >= 0
        m[np.flatnonzero(kept), lookup[kept]] = 1.0
        return m

    def apply(self, raw: RawData, require_all: bool = True) -> RawData:
        """Remap labels (and soft labels); rows of source classes the map drops leave the data.

        ``stats["class_map_dropped"]`` counts the dropped rows, ``stats["class_map_dropped_classes"]``
        per source class; ``stats["class_map_missing"]`` lists task classes the data has no class for.
        That is an error unless ``require_all`` is False (training needs every class; scoring an
        external set scores the classes both share).
        """
        m = self.match(raw.class_names)
        if m.missing and require_all:
            raise ValueError(
                f"class map {self.name}: classes {m.missing} match no class of {raw.name} "
                f"(its classes: {list(raw.class_names)}"
                + (f"; mapping keys naming none of them: {m.unmatched_keys}" if m.unmatched_keys else "")
                + "). Map them in data.class_map, or take the data's own classes with data.classes=from_folders"
            )
        new = m.lookup[raw.labels]
        keep = new >= 0
        out = raw.subset(keep)
        soft = None
        labels = new[keep]
        if raw.soft is not None:
            soft = raw.soft[keep] @ self.matrix(raw.class_names)
            total = soft.sum(axis=1, keepdims=True)
            # a kept row always has mass on its own (mapped) class; guard anyway
            soft = np.where(total > 0, soft / np.maximum(total, 1e-12), np.eye(self.num_classes, dtype=np.float32)[labels])
            soft = soft.astype(np.float32)
            labels = soft.argmax(axis=1)
        per_class = np.bincount(raw.labels[~keep], minlength=len(raw.class_names))
        dropped_classes = {c: int(per_class[i]) for i, c in enumerate(raw.class_names) if m.lookup[i] < 0}
        if any(dropped_classes.values()):
            log.info("class map %s on %s: dropped rows of classes %s", self.name, raw.name, dropped_classes)
        stats = dict(out.stats)
        stats["class_map_dropped"] = int((~keep).sum())
        stats["class_map_dropped_classes"] = dropped_classes
        stats["class_map_missing"] = list(m.missing)
        return replace(out, labels=labels, soft=soft, class_names=tuple(self.names), stats=stats)

    # Targets a stored class-map config may name: it is read from checkpoints and bundles made by
    # others, so it is never handed to hydra's instantiate (that would call any `_target_`).
    CONFIG_TARGETS = ("ferops.data.class_map.ClassMap", "ferops.data.ClassMap")
    CONFIG_KEYS = ("names", "mapping", "name", "aliases")

    @classmethod
    def from_config(cls, node: Mapping[str, object], where: str = "class_map") -> ClassMap:
        """The map a stored config (``{"names", "mapping", "name", "aliases"}``, as in
        ``conf/data/class_map``) describes, built without instantiating anything."""
        if not isinstance(node, Mapping):
            raise ValueError(f"{where}: expected a mapping with 'names', got {type(node).__name__}")
        target = node.get("_target_")
        if target is not None and target not in cls.CONFIG_TARGETS:
            raise ValueError(f"{where}._target_={target!r}: a class map must be one of {list(cls.CONFIG_TARGETS)}")
        unknown = sorted(set(node) - {"_target_", *cls.CONFIG_KEYS})
        if unknown or "names" not in node:
            raise ValueError(f"{where}: needs 'names' (and optionally 'mapping', 'name', 'aliases'), got keys {sorted(node)}")
        names, mapping, aliases = node["names"], node.get("mapping"), node.get("aliases")
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ValueError(f"{where}.names: expected a list of class names, got {names!r}")
        for key, value in (("mapping", mapping), ("aliases", aliases)):
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"{where}.{key}: expected source class -> name, got {value!r}")
        name = node.get("name")
        return cls(
            list(names),
            None if not isinstance(mapping, Mapping) else dict(mapping),
            None if name is None else str(name),
            None if not isinstance(aliases, Mapping) else dict(aliases),
        )

    def to_config(self) -> dict[str, object]:
        """JSON-able ``{"name", "names", "mapping", "aliases"}`` that :meth:`from_config` reads back."""
        return {"name": self.name, "names": list(self.names), "mapping": self.mapping, "aliases": dict(self.aliases)}

    def __repr__(self) -> str:
        return f"ClassMap(name={self.name!r}, names={self.names}, mapping={self.mapping})"


def recorded_class_map(meta: Mapping[str, Any], where: str = "checkpoint") -> ClassMap | None:
    """The class map a trained model records (a checkpoint's meta), rebuilt from names.

    ``meta["class_map"]`` is the map the data module applied (``data.classes=from_folders``
    included); checkpoints written before it was recorded have only their config's
    ``data.class_map``; None for a meta with neither."""
    if meta.get("class_map") is not None:
        return ClassMap.from_config(meta["class_map"], f"{where}: class_map")
    node = ((meta.get("config") or {}).get("data") or {}).get("class_map")
    return None if node is None else ClassMap.from_config(node, f"{where}: config.data.class_map")


def fer7() -> ClassMap:
    return ClassMap(list(FER_CLASSES), name="fer7")
