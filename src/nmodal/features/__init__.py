"""Feature sets (in memory) and the feature store (on disk)."""

from nmodal.features.featureset import FeatureSet
from nmodal.features.reader import StoreReader, StoreView, read_featureset
from nmodal.features.store import write_featureset
from nmodal.features.synthetic import make_synthetic

__all__ = [
    "FeatureSet",
    "StoreReader",
    "StoreView",
    "make_synthetic",
    "read_featureset",
    "write_featureset",
]
