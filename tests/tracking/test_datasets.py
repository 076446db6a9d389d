"""Each split as an MLflow dataset input: name, digest, source, context, read back from the store."""

from __future__ import annotations

import mlflow
import pytest

from ferops import tracking
from ferops.tracking.datasets import split_datasets

RECORD = {
    "val_source": "PublicTest",
    "test_source": "PrivateTest",
    "train_count": 28709,
    "val_count": 3589,
    "test_count": 3589,
    "train_digest": "0123456789abcdef",
    "val_digest": "fedcba9876543210",
    "test_digest": "00112233445566778899aabbccddeeff00112233",  # longer than a store keeps
}


def logged_run(record, name, source):
    with tracking.start_run("datasets-test") as run:
        logged = tracking.log_split_inputs(record, name, source)
    return mlflow.MlflowClient().get_run(run.info.run_id), logged


def test_three_splits_are_logged_with_digest_source_and_context(mlflow_store, tmp_path):
    raw = tmp_path / "fer2013.csv.gz"
    run, logged = logged_run(RECORD, "fer2013", str(raw))
    assert len(logged) == 3
    inputs = run.inputs.dataset_inputs
    by_context = {next(t.value for t in di.tags if t.key == "mlflow.data.context"): di.dataset for di in inputs}
    assert set(by_context) == {"training", "validation", "test"}
    val = by_context["validation"]
    assert val.name == "fer2013-val" and val.digest == RECORD["val_digest"]
    assert str(raw) in val.source and val.source_type == "local"
    assert by_context["test"].digest == RECORD["test_digest"][:36]
    assert '"num_rows": 28709' in by_context["training"].profile

    # read back as promotion would: per split
    splits = tracking.split_inputs(run)
    assert splits["val"]["digest"] == RECORD["val_digest"] and splits["val"]["rows"] == "3589"
    assert splits["train"]["name"] == "fer2013-train"


def test_search_runs_sees_the_inputs(mlflow_store):
    run, _ = logged_run(RECORD, "fer2013", "data/raw/fer2013.csv.gz")
    [found] = mlflow.search_runs(experiment_names=["datasets-test"], output_format="list")
    assert tracking.split_inputs(found)["val"]["digest"] == RECORD["val_digest"]
    assert found.info.run_id == run.info.run_id


def test_generated_data_has_a_code_source_and_nothing_is_uploaded(mlflow_store):
    run, _ = logged_run(RECORD, "synthetic", None)
    splits = tracking.split_inputs(run)
    assert {s["source_type"] for s in splits.values()} == {"code"}
    assert "synthetic" in splits["test"]["source"]
    assert mlflow.MlflowClient().list_artifacts(run.info.run_id) == []


def test_a_record_without_digests_logs_nothing(mlflow_store):
    run, logged = logged_run({}, "fer2013", None)
    assert logged == [] and run.inputs.dataset_inputs == []
    assert tracking.split_inputs(run) == {}


@pytest.mark.parametrize("source", ["s3://bucket/fer2013.csv", "https://example.org/fer2013.csv"])
def test_remote_sources_resolve(source):
    [(ds, context, tags), *_] = split_datasets(RECORD, "fer2013", source)
    assert context == "training" and tags["ferops.split"] == "train"
    assert source in ds.source.to_json()


def test_logging_twice_keeps_one_input_per_split(mlflow_store):
    # a resumed run logs its record again
    with tracking.start_run("datasets-test") as run:
        tracking.log_split_inputs(RECORD, "fer2013", "data/raw/fer2013.csv.gz")
    with tracking.start_run("datasets-test", run_id=run.info.run_id):
        tracking.log_split_inputs(RECORD, "fer2013", "data/raw/fer2013.csv.gz")
    assert len(mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs) == 3


def test_raw_source_of_the_data_layer_sources(tmp_path):
    from ferops.data.sources import Fer2013Csv, FerPlus, ImageFolder
    from ferops.data.synthetic import SyntheticFaces

    csv = tmp_path / "fer2013.csv"
    assert tracking.raw_source(Fer2013Csv(path=csv)) == str(csv)
    assert tracking.raw_source(ImageFolder(root=tmp_path)) == str(tmp_path)
    assert tracking.raw_source(FerPlus(fer2013_path=csv, ferplus_path=tmp_path / "fer2013new.csv")) == str(csv)
    assert tracking.raw_source(SyntheticFaces(n_per_class=1)) is None
