"""Zoos of trained networks: build them offline, load the published formats, store them safely, augment.

>>> import monomial_gmn as mg
>>> path = mg.data.build_zoo("digits-cnn", "zoo-dir", nets=64, workers=2)      # doctest: +SKIP
>>> zoo = mg.data.load_zoo(path)                       # our format, a Small CNN Zoo, or SIREN state dicts
>>> split = zoo.split(seed=0)                          # {'train', 'val', 'test'} index arrays
>>> batch = zoo.batch(split["train"][:32])             # a PyG Batch of ParameterGraphs
>>> batch = mg.data.RandomMonomial(level=2)(batch)     # a random monomial group element per network
"""

from ..graph import ACTIVATIONS, Architecture, SamePad2d, digits_cnn_architecture, siren_architecture
from ._augment import RandomMonomial
from ._build import KINDS, build_config, build_zoo, concat_zoos, merge_shards
from ._build_cnn import CNN_DEFAULTS
from ._build_siren import SIREN_DEFAULTS, siren_grid, siren_init
from ._digest import zoo_digest
from ._digits import digits, upsample
from ._format import read_zoo, save_zoo
from ._load import detect_format, filter_zoo, load_zoo
from ._siren_dir import LABEL_SOURCES, read_siren_dir
from ._small_cnn import read_small_cnn_zoo
from ._zoo import Zoo

__all__ = [
    "Zoo", "load_zoo", "build_zoo", "merge_shards", "save_zoo", "read_zoo", "read_small_cnn_zoo", "read_siren_dir",
    "detect_format", "filter_zoo", "concat_zoos", "zoo_digest", "RandomMonomial", "Architecture", "SamePad2d",
    "digits_cnn_architecture", "siren_architecture", "digits", "upsample", "siren_grid", "siren_init", "CNN_DEFAULTS",
    "SIREN_DEFAULTS", "KINDS", "ACTIVATIONS", "LABEL_SOURCES", "build_config",
]
