from pathlib import Path

import numpy as np
import pytest
import yaml

from ferops.data import ClassMap, RawData

CONF = Path(__file__).resolve().parents[2] / "conf" / "data" / "class_map"


def load_map(name: str) -> ClassMap:
    cfg = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    cfg.pop("_target_")
    return ClassMap(**cfg)


def raw7(soft=False):
    labels = np.arange(7)  # one row per FER class: angry .. neutral
    s = None
    if soft:
        s = np.zeros((7, 7), np.float32)
        s[np.arange(7), np.arange(7)] = 0.6
        s[np.arange(7), (np.arange(7) + 1) % 7] = 0.4  # 40% on the next class
    return RawData(
        images=np.zeros((7, 48, 48), np.uint8) + np.arange(7, dtype=np.uint8)[:, None, None],
        labels=labels,
        usage=["train"] * 7,
        ids=[f"r{i}" for i in range(7)],
        name="t",
        soft=s,
    )


def test_fer7_identity():
    out = load_map("fer7").apply(raw7())
    assert out.class_names == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert out.labels.tolist() == list(range(7))


def test_fer5_drops_fear_and_sad():
    cm = load_map("fer5")
    out = cm.apply(raw7())
    assert cm.names == ["angry", "disgust", "happy", "neutral", "surprise"]
    assert out.ids.tolist() == ["r0", "r1", "r3", "r5", "r6"]  # fear (2) and sad (4) dropped
    assert out.labels.tolist() == [0, 1, 2, 4, 3]  # happy->2, surprise->4, neutral->3
    assert out.images[:, 0, 0].tolist() == [0, 1, 3, 5, 6]
    assert out.stats["class_map_dropped"] == 2


def test_fer4_merges():
    out = load_map("fer4").apply(raw7())
    assert out.class_names == ("angry", "sad", "happy", "neutral")
    # angry, disgust -> angry; fear, sad -> sad; happy; surprise, neutral -> neutral
    assert out.labels.tolist() == [0, 0, 1, 2, 1, 3, 3]


def test_soft_columns_sum_and_renormalise():
    out = load_map("fer4").apply(raw7(soft=True))
    assert out.soft.shape == (7, 4)
    np.testing.assert_allclose(out.soft.sum(1), 1.0, rtol=1e-6)
    # row angry: 0.6 angry + 0.4 disgust -> all angry
    np.testing.assert_allclose(out.soft[0], [1, 0, 0, 0], atol=1e-6)
    # row disgust: 0.6 disgust(->angry) + 0.4 fear(->sad)
    np.testing.assert_allclose(out.soft[1], [0.6, 0.4, 0, 0], atol=1e-6)
    # row neutral: 0.6 neutral + 0.4 angry (wraps around)
    np.testing.assert_allclose(out.soft[6], [0.4, 0, 0, 0.6], atol=1e-6)

    out5 = load_map("fer5").apply(raw7(soft=True))
    # row angry 0.6 angry + 0.4 disgust: both kept; row disgust: 0.6 disgust + 0.4 fear (dropped) -> renormalised
    np.testing.assert_allclose(out5.soft[0], [0.6, 0.4, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out5.soft[1], [0, 1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out5.soft.sum(1), 1.0, rtol=1e-6)
    assert out5.labels.tolist() == out5.soft.argmax(1).tolist()


def test_custom_map_and_errors():
    cm = load_map("valence3")
    out = cm.apply(raw7())
    assert out.labels.tolist() == [0, 0, 0, 2, 0, 1]  # surprise dropped
    assert ClassMap(["pos", "neg"], {3: "pos", "sad": "neg"}).apply(raw7()).labels.tolist() == [0, 1]  # rows happy, sad
    # a mapping key naming no class of the data: the task class it should feed is empty, and the error says why
    with pytest.raises(ValueError, match=r"classes \['a'\] match no class of t .*mapping keys naming none of them: \['joy'\]"):
        ClassMap(["a"], {"joy": "a"}).apply(raw7())
    with pytest.raises(ValueError, match="not in names"):
        ClassMap(["a"], {"happy": "b"})
    with pytest.raises(ValueError, match="receive no source class"):
        ClassMap(["a", "b"], {"happy": "a"})
    with pytest.raises(ValueError, match=r"outside 0\.\.6"):
        ClassMap(["a"], {9: "a"})


def raw_named(names, labels, soft=None):
    n = len(labels)
    return RawData(
        images=np.zeros((n, 48, 48), np.uint8),
        labels=labels,
        usage=["train"] * n,
        ids=[f"r{i}" for i in range(n)],
        name="src",
        soft=soft,
        class_names=tuple(names),
    )


def test_maps_any_source_class_names_with_aliases():
    """Sources label rows in their own class names (here AffectNet-8's spellings, contempt included)."""
    names = ["Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
    raw = raw_named(names, np.arange(8))
    out = load_map("ferplus8").apply(raw)
    assert out.class_names == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
    assert [out.class_names[i] for i in out.labels] == [
        "angry",
        "contempt",
        "disgust",
        "fear",
        "happy",
        "neutral",
        "sad",
        "surprise",
    ]
    out7 = load_map("fer7").apply(raw)  # contempt has no FER-7 class: dropped, counted per class
    assert len(out7) == 7 and out7.stats["class_map_dropped_classes"] == {"Contempt": 1}
    # a class set's own aliases: another spelling of one of its classes
    cm = ClassMap(["smile", "frown"], aliases={"grin": "smile"})
    assert cm.apply(raw_named(["grin", "frown"], np.array([0, 1, 0]))).labels.tolist() == [0, 1, 0]
    assert ClassMap.from_config(cm.to_config()).aliases == {"grin": "smile"}
    # soft labels over source classes: merged columns sum, dropped ones go
    soft = np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]], np.float32)
    merged = ClassMap(["pos"], {"x": "pos", "y": "pos"}).apply(raw_named(["x", "y", "z"], np.array([0, 2]), soft))
    np.testing.assert_allclose(merged.soft, [[1.0]]) and merged.stats["class_map_dropped"] == 1


def test_from_source_takes_the_data_classes_sorted():
    cm = ClassMap.from_source(["Dog", "cat", "happiness"])
    assert cm.names == ["cat", "dog", "happy"] and cm.name == "from_source"
    assert cm.apply(raw_named(["Dog", "cat", "happiness"], np.array([0, 1, 2]))).labels.tolist() == [1, 0, 2]


def test_class_map_from_config_round_trips_and_instantiates_nothing():
    from ferops.data import ClassMap

    cm = ClassMap(["pos", "neg"], {"happy": "pos", "surprise": "pos", "sad": "neg"}, name="v2")
    back = ClassMap.from_config(cm.to_config())
    assert back.names == cm.names and back.mapping == cm.mapping and back.name == "v2"
    node = {"_target_": "ferops.data.class_map.ClassMap", "names": ["happy", "sad"], "mapping": None, "name": "x"}
    assert ClassMap.from_config(node).names == ["happy", "sad"]
    with pytest.raises(ValueError, match="a class map must be one of"):
        ClassMap.from_config({"_target_": "builtins.exec", "names": ["happy"]}, "ckpt: config.data.class_map")
    with pytest.raises(ValueError, match="needs 'names'"):
        ClassMap.from_config({"names": ["happy"], "_args_": ["code"]})
