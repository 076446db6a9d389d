"""Names shared by the whole data layer: the FER label space, usages and image geometry."""

from __future__ import annotations

IMAGE_SIZE = 48
N_PIXELS = IMAGE_SIZE * IMAGE_SIZE

# The 7-class FER2013 id space every source decodes into (RawData.labels).
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_CLASS_TO_ID: dict[str, int] = {name: i for i, name in enumerate(FER_CLASSES)}

# Other spellings met in public releases (FER+, AffectNet-style folders, RAF-DB names).
CLASS_ALIASES: dict[str, str] = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
}

USAGES: tuple[str, ...] = ("train", "val", "test")
SPLITS = USAGES

# Usage names -> train/val/test, lower-case: the FER2013 Usage column, split folder names of image
# folders and the `usage` argument of external evaluation all accept these.
USAGE_ALIASES: dict[str, str] = {
    "training": "train",
    "train": "train",
    "publictest": "val",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "privatetest": "test",
    "test": "test",
}


def usage_of(name: str) -> str | None:
    """train / val / test for a usage name (case-insensitive, see `USAGE_ALIASES`), None when unknown."""
    return USAGE_ALIASES.get(name.strip().lower())
