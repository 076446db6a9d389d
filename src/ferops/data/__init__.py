"""ferops.data: sources, validation, class maps, splits, cache and the Lightning datamodule.

Numpy-only names are re-exported here; the torch parts live in `ferops.data.datamodule`,
`ferops.data.augment` and `ferops.models.preprocess` (import them directly).
"""

from ferops.data.class_map import ClassMap
from ferops.data.constants import FER_CLASSES, IMAGE_SIZE
from ferops.data.fer2013 import Fer2013Csv
from ferops.data.ferplus import FerPlus
from ferops.data.image_folder import ImageFolder
from ferops.data.prepare import PreparedData, load_prepared, prepare_dataset, save_prepared
from ferops.data.raw import RawData
from ferops.data.splits import SplitWarning, assign_splits, calibration_indices, calibration_subset
from ferops.data.synthetic import SyntheticFaces
from ferops.data.validation import DataIssue, DataValidationError, write_quarantine

__all__ = [
    "FER_CLASSES",
    "IMAGE_SIZE",
    "ClassMap",
    "DataIssue",
    "DataValidationError",
    "Fer2013Csv",
    "FerPlus",
    "ImageFolder",
    "PreparedData",
    "RawData",
    "SplitWarning",
    "SyntheticFaces",
    "assign_splits",
    "calibration_indices",
    "calibration_subset",
    "load_prepared",
    "prepare_dataset",
    "save_prepared",
    "write_quarantine",
]
