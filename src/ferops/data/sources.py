"""Old home of the data sources, kept as a re-export: Hydra configs (``_target_:
ferops.data.sources.Fer2013Csv``), stored checkpoints and run params name these paths.

Each idea now has its own module: `ferops.data.raw` (RawData), `ferops.data.cached_source` (the
Source base and its decode cache), `ferops.data.csv_reader`, `ferops.data.pixel_strings`,
`ferops.data.fer2013`, `ferops.data.image_folder`, `ferops.data.ferplus`.
"""

from ferops.data.cached_source import Source
from ferops.data.constants import USAGE_ALIASES
from ferops.data.fer2013 import Fer2013Csv
from ferops.data.ferplus import FERPLUS_COLUMNS, FERPLUS_EMOTIONS, FERPLUS_TO_FER, FerPlus
from ferops.data.image_folder import IMAGE_EXTENSIONS, SPLIT_DIRS, ImageFolder, decode_image
from ferops.data.pixel_strings import parse_pixel_strings
from ferops.data.raw import RawData

__all__ = [
    "FERPLUS_COLUMNS",
    "FERPLUS_EMOTIONS",
    "FERPLUS_TO_FER",
    "IMAGE_EXTENSIONS",
    "SPLIT_DIRS",
    "USAGE_ALIASES",
    "Fer2013Csv",
    "FerPlus",
    "ImageFolder",
    "RawData",
    "Source",
    "decode_image",
    "parse_pixel_strings",
]
