"""features: validate, store, point-in-time features and labels (DESIGN.md §2, §5, §6)."""

# Names resolve on first use (PEP 562) so that importing a light submodule such as ``features.errors`` (the CLI
# does, at start-up) does not pull in pandas and the builder.
_SOURCES = {
    "build": ("DEFAULT_SHRINKAGE_STRENGTH", "build_features", "inspector_stringency"),
    "inspectors": ("inspection_teams", "inspector_roster"),
    "visits": ("visit_examples",),
    "catalog": ("CATALOG", "DEFAULT_WINDOWS", "Feature", "Quantity", "Where", "catalog_for", "catalog_frame",
                "categorical_names", "describe", "feature_names", "get_feature", "monotone_constraints"),
    "labels": ("LabelTarget", "build_labels", "labels_complete_on", "oracle_risk"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"features.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


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
    "inspection_teams",
    "inspector_roster",
    "inspector_stringency",
    "labels_complete_on",
    "monotone_constraints",
    "oracle_risk",
    "visit_examples",
]
