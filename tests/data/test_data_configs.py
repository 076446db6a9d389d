"""Every conf/data option composes, resolves and instantiates (sources are built, not loaded)."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ferops.data import ClassMap, Fer2013Csv, FerPlus, ImageFolder, SyntheticFaces
from ferops.data.augment import BatchAugment
from ferops.data.datamodule import FERDataModule

CONF = Path(__file__).resolve().parents[2] / "conf"
DATA_CONFIGS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))


def compose_data(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=None, overrides=list(overrides)).data


def test_expected_options_exist():
    assert {"synthetic", "fer2013", "ferplus", "ferplus_soft", "image_folder"} <= set(DATA_CONFIGS)
    assert {"fer7", "fer5", "fer4"} <= {p.stem for p in (CONF / "data" / "class_map").glob("*.yaml")}


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_data_config_instantiates(name):
    cfg = compose_data(f"+data={name}", "data.on_bad_rows=skip")
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    dm = instantiate(cfg)
    assert isinstance(dm, FERDataModule)
    assert isinstance(dm.class_map, ClassMap) and isinstance(dm.augment, BatchAugment)
    assert isinstance(dm.source, (SyntheticFaces, Fer2013Csv, FerPlus, ImageFolder))
    if not isinstance(dm.source, SyntheticFaces):
        assert dm.source.on_bad_rows == "skip" and str(dm.source.cache_dir) == cfg.cache_dir


@pytest.mark.parametrize(
    "name, attr",
    [("fer2013", "path"), ("image_folder", "root"), ("ferplus", "fer2013_path"), ("ferplus_soft", "fer2013_path")],
)
def test_data_path_reaches_the_source(name, attr, tmp_path):
    # data.path is the one knob for the raw location (the command line uses it)
    dm = instantiate(compose_data(f"+data={name}", f"data.path={tmp_path / 'raw'}"))
    assert str(getattr(dm.source, attr)) == str(tmp_path / "raw")


@pytest.mark.parametrize("class_map, n", [("fer7", 7), ("fer5", 5), ("fer4", 4), ("valence3", 3)])
def test_synthetic_with_class_maps(class_map, n):
    cfg = compose_data(
        "+data=synthetic",
        f"data/class_map={class_map}",
        "data/augment=none",
        "data.source.n_per_class=10",
        "data.quarantine_path=null",
    )
    dm = instantiate(cfg)
    dm.setup()
    assert len(dm.class_names) == n and len(dm.class_counts) == n
    report = json.loads(json.dumps(dm.report))  # JSON-ready for stats.json
    assert report["class_names"] == dm.class_names and report["split"]["strategy"] == "official"
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[1:] == (1, 48, 48)


def test_ferplus_soft_sets_mode():
    dm = instantiate(compose_data("+data=ferplus_soft"))
    assert dm.source.mode == "soft" and dm.source.tie_policy == "drop"


def test_sources_share_one_base_and_each_sets_its_path():
    # conf/data/_base_/datamodule.yaml holds the common keys (path: ??? there); it is no data= option
    assert (CONF / "data" / "_base_" / "datamodule.yaml").is_file() and "datamodule" not in DATA_CONFIGS
    for name in DATA_CONFIGS:
        cfg = compose_data(f"+data={name}")
        assert not OmegaConf.is_missing(cfg, "path") and cfg.path, name
