"""Champion / challenger promotion, its records, dry runs and rollback on a temporary store."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from ferops.registry import tags as T
from ferops.registry.config import Gates, RegistryConfig, load_registry_config
from ferops.registry.promote import NOOP, PROMOTE, REFUSE, REJECT, ROLLBACK, decide, promote, rollback, version_gate_failures
from ferops.registry.register import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, register_model, version_tags

NAME = "fer-promo"


def mv(version: int, f1: float | None, fp: str = "fp-a", gates: bool = True, **extra: str) -> ModelVersion:
    tags = {T.EXPORT_GATES: str(gates).lower(), T.DATA_FINGERPRINT: fp, **extra}
    if f1 is not None:
        tags[T.INT8_MACRO_F1] = str(f1)
    return ModelVersion(
        name=NAME, version=str(version), creation_timestamp=0, tags=[ModelVersionTag(k, v) for k, v in tags.items()]
    )


# -- the decision alone ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("chal", "champ", "margin", "action", "reason"),
    [
        (None, None, 0.0, NOOP, "no version has the alias"),
        (mv(1, 0.5), None, 0.0, PROMOTE, "first model"),
        (mv(1, 0.5, gates=False), None, 0.0, REJECT, "export gates not passed"),
        (mv(2, 0.6), mv(1, 0.5), 0.0, PROMOTE, "+0.1000, wins"),
        (mv(2, 0.6), mv(1, 0.5), 0.2, REJECT, "needs > 0 and >= margin 0.2"),
        (mv(2, 0.5), mv(1, 0.5), 0.0, REJECT, "+0.0000"),  # a tie does not win
        (mv(2, 0.4), mv(1, 0.5), 0.0, REJECT, "-0.1000"),
        (mv(2, 0.9, fp="fp-b"), mv(1, 0.5), 0.0, REFUSE, "different data"),
        # a 7-class and an 8-class model are never ranked on one number (same fingerprint even)
        (
            mv(2, 0.9, **{T.DATA_CLASSES: "angry,happy,contempt"}),
            mv(1, 0.5, **{T.DATA_CLASSES: "angry,happy"}),
            0.0,
            REFUSE,
            "different class sets",
        ),
        (mv(2, 0.6, **{T.DATA_CLASSES: "angry,happy"}), mv(1, 0.5, **{T.DATA_CLASSES: "angry,happy"}), 0.0, PROMOTE, "wins"),
        (mv(2, 0.9, fp=""), mv(1, 0.5), 0.0, REFUSE, "data.fingerprint missing on challenger"),
        (mv(2, None), mv(1, 0.5), 0.0, REFUSE, "challenger has no int8.macro_f1"),
        (mv(2, 0.6), mv(1, None), 0.0, REFUSE, "champion has no"),
        (mv(1, 0.6), mv(1, 0.6), 0.0, NOOP, "already the champion"),
    ],
)
def test_decide(chal, champ, margin, action, reason):
    d = decide(NAME, chal, champ, margin, Gates())
    assert d.action == action
    assert reason in d.reason


def test_gates():
    tags = {T.EXPORT_GATES: "true", T.EDGETPU_COMPATIBLE: "false", T.INT8_MACRO_F1: "0.4", T.LATENCY_MS: "9.0"}
    assert version_gate_failures(tags, Gates()) == []
    strict = Gates(require_edgetpu_compatible=True, min_int8_macro_f1=0.5, max_latency_ms=5, max_int8_acc_drop_points=1.0)
    failures = version_gate_failures(tags, strict)
    assert len(failures) == 4
    assert any("EdgeTPU" in f for f in failures) and any("int8.acc_drop_points missing" in f for f in failures)
    assert version_gate_failures({}, Gates(require_export_gates=False)) == []


def test_config_rejects_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown registry\.gates option"):
        RegistryConfig.from_mapping({"gates": {"min_f1": 0.5}})
    (tmp_path / "params.yaml").write_text("registry:\n  name: x\n  margin: 0.01\n  gates:\n    max_latency_ms: 3\n")
    cfg = load_registry_config(tmp_path / "params.yaml")
    assert (cfg.name, cfg.margin, cfg.gates.max_latency_ms, cfg.gates.require_export_gates) == ("x", 0.01, 3, True)
    shipped = load_registry_config(__import__("pathlib").Path(__file__).parents[2] / "conf/registry/default.yaml")
    assert shipped == RegistryConfig()  # conf and dataclass defaults agree


# -- on a store --------------------------------------------------------------------------------
def _aliases(client) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}


def _snapshot(client) -> tuple:
    versions = client.search_model_versions(f"name = '{NAME}'")
    return _aliases(client), sorted((v.version, sorted(v.tags.items()), v.description) for v in versions)


def _add_version(client, source_mv, run_id, metrics_tags: dict) -> str:
    """A further version sharing the first one's model files (cheap), tagged like register_model."""
    tags = version_tags(client.get_run(run_id), None, metrics_tags)
    v = str(client.create_model_version(NAME, source=source_mv.source, run_id=run_id, tags=tags).version)
    client.set_registered_model_alias(NAME, CHALLENGER, v)
    return v


def test_promotion_lifecycle(store, bundle_dir, make_run, export_metrics, monkeypatch):
    client = mlflow.MlflowClient()
    monkeypatch.setenv("DVC_EXP_NAME", "exp-one")
    run1 = make_run()
    v1 = register_model(run1, bundle_dir, NAME, metrics=export_metrics(0.50), tags={"owner": "tests"})
    mv1 = client.get_model_version(NAME, v1)
    assert mv1.tags[T.INT8_MACRO_F1] == "0.5" and mv1.tags[T.EDGETPU_COMPATIBLE] == "true"
    assert mv1.tags[T.LATENCY_MS] == "2.5" and mv1.tags[T.EXPORT_GATES] == "true" and mv1.tags[T.INT8_ACC] == "0.52"
    assert mv1.tags[T.INT8_ACC_DROP] == "0.5" and mv1.tags[T.INT8_SIZE] == "123456"
    assert mv1.tags[T.GIT_COMMIT] == "abc123" and mv1.tags[T.CONFIG_HASH] == "cfg0001"
    assert mv1.tags[T.DATA_FINGERPRINT] == "fp-a" and mv1.tags[T.DVC_EXP] == "exp-one" and mv1.tags["owner"] == "tests"
    assert _aliases(client) == {CHALLENGER: v1}
    assert client.get_run(run1).data.tags["registry.version"] == v1

    # dry run: decides, changes nothing
    before = _snapshot(client)
    d = promote(NAME, dry_run=True)
    assert (d.action, d.dry_run, d.applied) == (PROMOTE, True, False)
    assert _snapshot(client) == before

    # first model passing the gates becomes champion
    d = promote(NAME)
    assert d.applied and d.new_champion == v1
    assert _aliases(client) == {CHALLENGER: v1, CHAMPION: v1}
    assert client.get_model_version(NAME, v1).tags[T.PROMOTION_DECISION] == PROMOTE
    assert promote(NAME).action == NOOP  # nothing new to decide

    # a better challenger wins; the old champion is kept as previous-champion
    v2 = register_model(make_run(), bundle_dir, NAME, metrics=export_metrics(0.60))
    d = promote(NAME, margin=0.05)
    assert (d.action, d.challenger, d.champion) == (PROMOTE, v2, v1)
    assert _aliases(client) == {CHALLENGER: v2, CHAMPION: v2, PREVIOUS_CHAMPION: v1}
    t1, t2 = client.get_model_version(NAME, v1), client.get_model_version(NAME, v2)
    assert t2.tags[T.PROMOTION_DECISION] == PROMOTE and t2.tags[T.PREVIOUS_CHAMPION] == v1
    assert t1.tags[T.PROMOTION_DECISION] == "demoted" and t1.tags[T.PROMOTION_AGAINST] == v2
    assert t2.description.splitlines()[0].endswith(d.reason) and T.PROMOTION_TIME in t2.tags

    # a worse one is rejected; the champion stays and records that it was challenged
    mv2 = client.get_model_version(NAME, v2)
    v3 = _add_version(client, mv2, make_run(), {T.INT8_MACRO_F1: "0.55", T.EXPORT_GATES: "true"})
    d = promote(NAME)
    assert d.action == REJECT and _aliases(client)[CHAMPION] == v2
    assert client.get_model_version(NAME, v3).tags[T.PROMOTION_DECISION] == REJECT
    assert client.get_model_version(NAME, v2).tags[T.PROMOTION_DECISION] == "retained"

    # a better one that fails a gate is rejected too
    v4 = _add_version(client, mv2, make_run(), {T.INT8_MACRO_F1: "0.90", T.EXPORT_GATES: "true", T.LATENCY_MS: "40"})
    d = promote(NAME, gates=Gates(max_latency_ms=10))
    assert (d.action, d.challenger) == (REJECT, v4) and "latency.ms=40 > 10" in d.reason and _aliases(client)[CHAMPION] == v2
    # ... and one evaluated on other data cannot be compared
    v5 = _add_version(client, mv2, make_run(fingerprint="fp-b"), {T.INT8_MACRO_F1: "0.95", T.EXPORT_GATES: "true"})
    d = promote(NAME)
    assert d.action == REFUSE and "different data" in d.reason and _aliases(client)[CHAMPION] == v2
    assert d.challenger == v5 and client.get_model_version(NAME, v5).tags[T.PROMOTION_DECISION] == REFUSE

    # rollback: back to v1, v2 recorded as rolled back and no longer challenger
    before = _snapshot(client)
    assert rollback(NAME, dry_run=True).new_champion == v1 and _snapshot(client) == before
    d = rollback(NAME)
    assert (d.action, d.champion, d.new_champion) == (ROLLBACK, v2, v1)
    assert _aliases(client) == {CHALLENGER: v5, CHAMPION: v1}
    assert client.get_model_version(NAME, v2).tags[T.PROMOTION_DECISION] == "rolled_back"
    assert client.get_model_version(NAME, v1).tags[T.PROMOTION_DECISION] == "restored"
    # v1 had no predecessor: nothing further to roll back to
    assert rollback(NAME).action == NOOP and _aliases(client)[CHAMPION] == v1


def test_rollback_walks_the_chain(store, bundle_dir, make_run, export_metrics):
    client = mlflow.MlflowClient()
    v1 = register_model(make_run(), bundle_dir, NAME, metrics=export_metrics(0.5))
    promote(NAME)
    mv1 = client.get_model_version(NAME, v1)
    v2 = _add_version(client, mv1, make_run(), {T.INT8_MACRO_F1: "0.6", T.EXPORT_GATES: "true"})
    promote(NAME)
    v3 = _add_version(client, mv1, make_run(), {T.INT8_MACRO_F1: "0.7", T.EXPORT_GATES: "true"})
    promote(NAME)
    assert _aliases(client) == {CHALLENGER: v3, CHAMPION: v3, PREVIOUS_CHAMPION: v2}
    rollback(NAME)
    assert _aliases(client) == {CHAMPION: v2, PREVIOUS_CHAMPION: v1}
    rollback(NAME)
    assert _aliases(client) == {CHAMPION: v1}
    # the model being served follows the alias
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == v1
