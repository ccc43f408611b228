"""Feature sets (in memory) and the feature store (on disk)."""

from nmodal.features.featureset import FeatureSet
from nmodal.features.store import read_featureset, write_featureset
from nmodal.features.synthetic import make_synthetic

__all__ = ["FeatureSet", "make_synthetic", "read_featureset", "write_featureset"]
