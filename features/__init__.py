"""features: validate, store, point-in-time features and labels (DESIGN.md §2, §5, §6)."""

from features.build import DEFAULT_SHRINKAGE_STRENGTH, build_features
from features.catalog import (
    CATALOG,
    DEFAULT_WINDOWS,
    Feature,
    Quantity,
    Where,
    catalog_for,
    catalog_frame,
    categorical_names,
    describe,
    feature_names,
    get_feature,
    monotone_constraints,
)
from features.labels import LabelTarget, build_labels, labels_complete_on, oracle_risk

__all__ = [
    "CATALOG",
    "DEFAULT_SHRINKAGE_STRENGTH",
    "DEFAULT_WINDOWS",
    "Feature",
    "LabelTarget",
    "Quantity",
    "Where",
    "build_features",
    "build_labels",
    "catalog_for",
    "catalog_frame",
    "categorical_names",
    "describe",
    "feature_names",
    "get_feature",
    "labels_complete_on",
    "monotone_constraints",
    "oracle_risk",
]
