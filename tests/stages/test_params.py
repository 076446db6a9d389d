from pathlib import Path

from omegaconf import OmegaConf

from ferops.stages.params import compose_params

ROOT = Path(__file__).resolve().parents[2]


def test_committed_params_yaml_matches_conf():
    """dvc repro reads params.yaml; it must be conf/ composed (run `make params` after editing conf/)."""
    composed = OmegaConf.to_container(compose_params(conf_dir=ROOT / "conf"))
    committed = OmegaConf.to_container(OmegaConf.load(ROOT / "params.yaml"))
    assert committed == composed


def test_params_hold_no_unresolvable_paths():
    text = (ROOT / "params.yaml").read_text()
    assert "None/" not in text and "${" not in text
