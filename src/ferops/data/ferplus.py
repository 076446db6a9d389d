"""`FerPlus`: FER+ crowd labels (``fer2013new.csv``) over the FER2013 pixels, with a documented label policy."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ferops.data.cache import file_sha256
from ferops.data.cached_source import Source
from ferops.data.constants import FER_CLASS_TO_ID, FER_CLASSES, usage_of
from ferops.data.csv_reader import read_csv, require_file
from ferops.data.fer2013 import Fer2013Csv
from ferops.data.raw import RawData
from ferops.data.validation import DataIssue, DataValidationError, check_on_bad_rows, raise_if_bad

FERPLUS_EMOTIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_COLUMNS = (*FERPLUS_EMOTIONS, "unknown", "nf")
# FER+ emotion column -> FER-7 id (contempt has no FER-7 class)
FERPLUS_TO_FER = {
    "anger": FER_CLASS_TO_ID["angry"],
    "disgust": FER_CLASS_TO_ID["disgust"],
    "fear": FER_CLASS_TO_ID["fear"],
    "happiness": FER_CLASS_TO_ID["happy"],
    "sadness": FER_CLASS_TO_ID["sad"],
    "surprise": FER_CLASS_TO_ID["surprise"],
    "neutral": FER_CLASS_TO_ID["neutral"],
}


def _not_emotion(votes: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rule 2 of the policy: rows whose NF (``not_face``), else ``unknown``, votes reach ``top``, the
    best emotion's count."""
    nf, unknown = votes[:, FERPLUS_COLUMNS.index("nf")], votes[:, FERPLUS_COLUMNS.index("unknown")]
    not_face = (nf > 0) & (nf >= top)
    return not_face, ~not_face & (unknown > 0) & (unknown >= top)


class FerPlus(Source):
    """FER+ crowd labels (``fer2013new.csv``) over the FER2013 pixels (same rows, same order).

    ``fer2013new.csv`` columns: ``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,
    contempt,unknown,NF`` (10 votes per image in the public release). Rows are joined by position; the
    FER+ Usage must match the FER2013 Usage of the same row. Rows with an empty ``Image name`` were dropped
    by FER+ and are dropped here (counted in ``stats["ferplus_dropped"]["no_image_name"]``).

    Label policy (every drop is counted in ``stats["ferplus_dropped"]``):

    1. ``contempt``: ``drop`` (default) keeps contempt as its own vote: a row where contempt has more votes
       than every FER emotion is dropped, and in soft mode the remaining contempt votes are discarded;
       ``disgust`` adds contempt votes to disgust; ``keep`` makes contempt an eighth source class
       (``class_names`` = the FER-7 names + ``contempt``, contempt last on ties; the ``ferplus8`` class map).
    2. Not a face / unknown: a row is dropped when NF (``not_face``) or ``unknown`` has at least as many
       votes as the best emotion (NF checked first).
    3. ``mode: majority`` (hard labels): the label is the emotion with the most votes. Ties between
       emotions: ``tie_policy: drop`` (default) drops the row, ``first`` keeps the lowest FER-7 id
       (angry < disgust < fear < happy < sad < surprise < neutral; contempt counts as last). The winning
       emotion needs at least ``min_votes`` votes (default 2: one annotator is not a label).
    4. ``mode: soft``: ``soft`` = the vote distribution over the 7 FER classes (contempt per rule 1),
       ``labels`` = its argmax (lowest id on ties; ``tie_policy`` does not apply). Rows with no emotion
       votes or whose best emotion has fewer than ``min_votes`` votes are dropped.
    5. ``mode: fer2013``: the FER2013 rows, ids and labels unchanged (so the same split, and val / test
       scored on the original labels), with ``soft`` = (1 - ``vote_weight``) x one-hot(FER2013 label) +
       ``vote_weight`` x the FER+ vote distribution over the 7 FER classes (contempt per rule 1, NF and
       unknown votes discarded). Rows FER+ has no usable votes for (no image name, malformed, NF or
       unknown at least the best emotion, no emotion votes) keep the one-hot target (counted in
       ``stats["ferplus_targets"]``). ``vote_weight`` < 0.5 keeps the FER2013 label the target's
       majority under any class map (the label stays the argmax).
    """

    MODES = ("majority", "soft", "fer2013")
    CONTEMPT = ("drop", "disgust", "keep")
    decoder_modules = ("ferops.data.csv_reader", "ferops.data.raw")

    def __init__(
        self,
        fer2013_path: str | os.PathLike,
        ferplus_path: str | os.PathLike,
        mode: str = "majority",
        tie_policy: str = "drop",
        contempt: str = "drop",
        min_votes: int = 2,
        vote_weight: float = 0.3,
        on_bad_rows: str = "error",
        cache_dir: str | None = None,
        name: str | None = None,
    ):
        if mode not in self.MODES:
            raise ValueError(f"FER+ mode must be one of {self.MODES}, got {mode!r}")
        if tie_policy not in ("drop", "first"):
            raise ValueError(f"tie_policy must be 'drop' or 'first', got {tie_policy!r}")
        if contempt not in self.CONTEMPT:
            raise ValueError(f"contempt must be one of {self.CONTEMPT}, got {contempt!r}")
        if mode == "fer2013" and contempt == "keep":
            raise ValueError("FER+ mode fer2013 keeps FER2013's 7 labels: contempt must be drop or disgust, not keep")
        if mode == "fer2013" and not 0.0 <= float(vote_weight) < 0.5:
            raise ValueError(f"FER+ vote_weight must be in [0, 0.5) so the FER2013 label stays the majority, got {vote_weight}")
        self.vote_weight = float(vote_weight)
        self.fer2013_path = Path(fer2013_path)
        self.ferplus_path = Path(ferplus_path)
        self.mode, self.tie_policy, self.contempt, self.min_votes = mode, tie_policy, contempt, int(min_votes)
        self.on_bad_rows = check_on_bad_rows(on_bad_rows)
        self.cache_dir = cache_dir
        self.name = name or {"majority": "ferplus", "soft": "ferplus_soft", "fer2013": "fer2013_ferplus_votes"}[mode]

    def cache_inputs(self) -> object:
        return [
            file_sha256(require_file(self.fer2013_path, "FER2013 CSV")),
            file_sha256(require_file(self.ferplus_path, "FER+ CSV")),
        ]

    def cache_options(self) -> dict:
        return {
            "on_bad_rows": self.on_bad_rows,
            "mode": self.mode,
            "tie_policy": self.tie_policy,
            "contempt": self.contempt,
            "min_votes": self.min_votes,
            **({"vote_weight": self.vote_weight} if self.mode == "fer2013" else {}),
        }

    def decode(self) -> RawData:
        base = Fer2013Csv(self.fer2013_path, on_bad_rows=self.on_bad_rows, cache_dir=self.cache_dir).load()
        path = require_file(self.ferplus_path, "FER+ CSV")
        table = read_csv(path, required=("usage", "image name", *FERPLUS_COLUMNS))
        n_fer = int(base.stats["n_records"])
        if table.n_records != n_fer:
            raise DataValidationError(
                path,
                f"has {table.n_records} data rows but {self.fer2013_path} has {n_fer}: "
                "the FER+ file must list the FER2013 rows in the same order",
            )
        n = len(table.lines)
        votes = np.zeros((n, len(FERPLUS_COLUMNS)), np.int64)
        reasons: dict[int, list[str]] = {}
        for j, col in enumerate(FERPLUS_COLUMNS):
            for i, value in enumerate(table.columns[col]):
                v = value.strip()
                if v.isascii() and v.isdigit():
                    votes[i, j] = int(v)
                else:
                    reasons.setdefault(i, []).append(f"bad vote count {value!r} in column {col!r}")
        usage = np.array([usage_of(u) or "?" for u in table.columns["usage"]])
        for i in np.flatnonzero(usage == "?"):
            reasons.setdefault(int(i), []).append(f"unknown Usage {table.columns['usage'][i]!r}")

        # join on the data-record index: FER2013 rows kept by the base decode
        pos_of_record = np.full(n_fer, -1, np.int64)
        pos_of_record[table.records] = np.arange(n)
        pos = pos_of_record[base.source_index]  # FER+ table position for each FER2013 row (-1: malformed)
        fer_usage_by_pos = {int(p): u for p, u in zip(pos.tolist(), base.usage.tolist()) if p >= 0}
        for i, u in enumerate(usage.tolist()):
            fu = fer_usage_by_pos.get(i)
            if u != "?" and fu is not None and u != fu:
                reasons.setdefault(i, []).append(f"Usage {table.columns['usage'][i]!r} does not match the FER2013 row ({fu})")

        issues = table.issues + [DataIssue(str(path), "; ".join(r), row=int(table.lines[i])) for i, r in reasons.items()]
        issues.sort(key=lambda q: q.row or 0)
        raise_if_bad(path, issues, self.on_bad_rows)

        ok_pos = np.ones(n, bool)
        ok_pos[list(reasons)] = False
        rows = np.flatnonzero(pos >= 0)
        rows = rows[ok_pos[pos[rows]]]
        p = pos[rows]
        named = np.array([bool(table.columns["image name"][k].strip()) for k in p.tolist()], bool)
        dropped = {"no_image_name": int((~named).sum())}
        rows, p = rows[named], p[named]
        if self.mode == "fer2013":
            return self._with_vote_targets(base, rows, votes[p], issues)
        keep, labels, soft, policy_drops = self._labels(votes[p])
        dropped.update(policy_drops)
        rows, p = rows[keep], p[keep]
        names = [table.columns["image name"][k].strip() for k in p.tolist()]
        ids = np.array([f"{path.name}:line {int(table.lines[k])} ({nm})" for k, nm in zip(p.tolist(), names)])
        return RawData(
            images=base.images[rows],
            labels=labels,
            usage=base.usage[rows],
            ids=ids,
            name=self.name,
            soft=soft,
            class_names=self.class_names,
            quarantine=base.quarantine + issues,
            stats={"n_records": n_fer, "ferplus_dropped": dropped},
            source_index=base.source_index[rows],
        )

    def _with_vote_targets(self, base: RawData, rows: np.ndarray, votes: np.ndarray, issues: list[DataIssue]) -> RawData:
        """Mode fer2013: every FER2013 row with its own label; ``rows`` (base row indices) with their
        FER+ ``votes`` get the blended soft target."""
        emo = self._emotion_votes(votes)[:, : len(FER_CLASSES)].astype(np.float64)  # contempt: dropped or in disgust
        top = emo.max(axis=1)
        not_face, unknown = _not_emotion(votes, top)
        usable = ~not_face & ~unknown & (top > 0)
        one_hot = np.eye(len(FER_CLASSES), dtype=np.float64)[base.labels]
        soft = one_hot.copy()
        with_votes = rows[usable]
        dist = emo[usable] / emo[usable].sum(axis=1, keepdims=True)
        soft[with_votes] = (1.0 - self.vote_weight) * one_hot[with_votes] + self.vote_weight * dist
        targets = {"with_votes": len(with_votes), "label_only": len(base.labels) - len(with_votes)}
        return replace(
            base,
            name=self.name,
            soft=soft.astype(np.float32),
            class_names=FER_CLASSES,
            quarantine=base.quarantine + issues,
            stats={**base.stats, "ferplus_targets": targets, "ferplus_vote_weight": self.vote_weight},
        )

    def _emotion_votes(self, votes: np.ndarray) -> np.ndarray:
        """Vote rows [N, 10] -> [N, 8]: the 7 FER ids, then contempt (0 with contempt: disgust, which adds it to disgust)."""
        col = {c: votes[:, j] for j, c in enumerate(FERPLUS_COLUMNS)}
        emo = np.zeros((len(votes), len(FER_CLASSES) + 1), np.int64)
        for c, fer_id in FERPLUS_TO_FER.items():
            emo[:, fer_id] = col[c]
        if self.contempt == "disgust":
            emo[:, FER_CLASS_TO_ID["disgust"]] += col["contempt"]
        else:
            emo[:, -1] = col["contempt"]
        return emo

    @property
    def class_names(self) -> tuple[str, ...]:
        return (*FER_CLASSES, "contempt") if self.contempt == "keep" else FER_CLASSES

    def _labels(self, votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, int]]:
        """Apply the documented policy to vote rows [N, 10] -> (keep mask, labels, soft or None, drop counts)."""
        emo = self._emotion_votes(votes)  # 7 FER ids + contempt last
        top = emo.max(axis=1)
        not_face, unknown = _not_emotion(votes, top)
        drops = {"not_face": int(not_face.sum()), "unknown": int(unknown.sum())}
        keep = ~not_face & ~unknown
        n_classes = len(self.class_names)
        if self.mode == "soft":
            src_votes = emo[:, :n_classes].astype(np.float64)
            total = src_votes.sum(axis=1)
            src_top = src_votes.max(axis=1)
            dropping = n_classes == len(FER_CLASSES)  # contempt is no class: its plurality rows go
            is_contempt = keep & (emo[:, -1] > src_top) & dropping
            keep &= ~is_contempt
            no_votes = keep & (total == 0)
            few = keep & ~no_votes & (src_top < self.min_votes)
            drops.update(
                {
                    "contempt": int(is_contempt.sum()),
                    "no_emotion_votes": int(no_votes.sum()),
                    "min_votes": int(few.sum()),
                }
            )
            keep &= ~no_votes & ~few
            soft = (src_votes[keep] / total[keep, None]).astype(np.float32)
            return keep, soft.argmax(axis=1), soft, drops
        winners = emo == top[:, None]
        tie = keep & (winners.sum(axis=1) > 1)
        label = winners.argmax(axis=1)  # first (lowest id) winner
        if self.tie_policy == "drop":
            drops["tie"] = int(tie.sum())
            keep &= ~tie
        is_contempt = keep & (label == len(FER_CLASSES)) & (n_classes == len(FER_CLASSES))
        drops["contempt"] = int(is_contempt.sum())
        keep &= ~is_contempt
        few = keep & (top < self.min_votes)
        drops["min_votes"] = int(few.sum())
        keep &= ~few
        return keep, label[keep], None, drops
