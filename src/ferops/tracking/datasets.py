"""The data a run saw, as MLflow dataset inputs: one per split (training / validation / test).

Nothing is uploaded: each input is a metadata-only dataset whose digest is the split's row digest
(`FERDataModule.split_record`, order-free over the row ids), whose source is where the rows came
from (the raw file or DVC-tracked path; the generator for synthetic data), and whose context says
how the run used it. The run page then lists them under "Datasets", and `split_inputs(run)` reads
them back (promotion compares the validation digest of two runs).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.exceptions import MlflowException

# split name -> MLflow input context
CONTEXTS = {"train": "training", "val": "validation", "test": "test"}
# input tags (beside MLflow's own `mlflow.data.context`)
TAG_SPLIT = "ferops.split"
TAG_ROWS = "ferops.rows"
TAG_ORIGIN = "ferops.split_source"  # which rows of the source fill the split (e.g. PublicTest, train carve-out)
MAX_DIGEST = 36  # MLflow's SQL stores keep at most 36 characters of a dataset digest


class SplitDataset(MetaDataset):
    """Metadata-only dataset with a row count, which the MLflow UI shows as its profile."""

    def __init__(self, source: DatasetSource, name: str, digest: str, num_rows: int | None = None):
        self._num_rows = num_rows
        super().__init__(source=source, name=name, digest=digest)

    @property
    def profile(self) -> Any | None:
        return None if self._num_rows is None else {"num_rows": int(self._num_rows)}

    def to_dict(self) -> dict[str, str]:
        config = super().to_dict()
        if self.profile:
            config["profile"] = json.dumps(self.profile)
        return config


# attributes of the data layer's sources that name the raw file or folder (Fer2013Csv, ImageFolder, FerPlus)
RAW_ATTRS = ("path", "root", "fer2013_path")


def raw_source(source: Any) -> str | None:
    """The raw file or folder a data source object reads (``datamodule.source``); None for generated
    data (SyntheticFaces), which has none."""
    for attr in RAW_ATTRS:
        value = getattr(source, attr, None)
        if value:
            return str(value)
    return None


def dataset_source(source: str | None, dataset_name: str) -> DatasetSource:
    """A path or URI (local, s3://, http(s)://, ...) as MLflow resolves it; no source (generated
    data) is a code source naming the dataset."""
    if source:
        try:
            with warnings.catch_warnings():  # "can be interpreted in multiple ways": local, as MLflow assumes
                warnings.simplefilter("ignore", UserWarning)
                return resolve_dataset_source(str(source))
        except MlflowException:
            pass
    return CodeDatasetSource({"dataset": dataset_name, **({"source": str(source)} if source else {})})


def split_datasets(
    split_record: Mapping[str, Any], dataset_name: str, source: str | None = None
) -> list[tuple[SplitDataset, str, dict[str, str]]]:
    """(dataset, context, input tags) for each split present in ``split_record``."""
    src = dataset_source(source, dataset_name)
    out = []
    for split, context in CONTEXTS.items():
        digest = split_record.get(f"{split}_digest")
        if not digest:
            continue
        count = split_record.get(f"{split}_count")
        ds = SplitDataset(src, name=f"{dataset_name}-{split}", digest=str(digest)[:MAX_DIGEST], num_rows=count)
        tags = {TAG_SPLIT: split}
        if count is not None:
            tags[TAG_ROWS] = str(int(count))
        origin = split_record.get(f"{split}_source")
        if origin is not None:
            tags[TAG_ORIGIN] = str(origin)
        out.append((ds, context, tags))
    return out


def log_split_inputs(split_record: Mapping[str, Any], dataset_name: str, source: str | None = None) -> list[SplitDataset]:
    """Log train / val / test as dataset inputs of the active run (contexts training / validation /
    test). ``source``: the raw path or DVC-tracked file the rows came from; None for generated data.
    Returns the datasets logged (none when ``split_record`` has no digests, e.g. old prepared data)."""
    entries = split_datasets(split_record, dataset_name, source)
    if entries:
        datasets, contexts, tags = (list(x) for x in zip(*entries, strict=True))
        mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=tags)
    return [ds for ds, _, _ in entries]


def split_inputs(run: mlflow.entities.Run) -> dict[str, dict[str, str]]:
    """A run's dataset inputs by split (``train``/``val``/``test``): name, digest, source, source_type,
    rows. Runs logged before this existed give ``{}``."""
    out: dict[str, dict[str, str]] = {}
    inputs = getattr(run, "inputs", None)
    for di in getattr(inputs, "dataset_inputs", None) or []:
        tags = {t.key: t.value for t in di.tags}
        split = tags.get(TAG_SPLIT) or next((s for s, c in CONTEXTS.items() if c == tags.get("mlflow.data.context")), None)
        if split is None:
            continue
        d = di.dataset
        out[split] = {"name": d.name, "digest": d.digest, "source": d.source, "source_type": d.source_type}
        if TAG_ROWS in tags:
            out[split]["rows"] = tags[TAG_ROWS]
    return out
