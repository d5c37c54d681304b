"""What the models need from the feature catalog (:mod:`features.catalog`), in one place.

The catalog is the single description of every feature: its risk direction drives monotone constraints
(scorecard trends, boosting ``monotonic_cst``), its bilingual description becomes reason-code text, and the
whole table is logged with every model. Columns the catalog does not know (none are expected from
``build_features``, but a notebook may add its own) are still usable by the learned models: they get no
constraint and their own name as text. Extra enterprise columns ``x_*`` get the catalog's generic entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import pandas as pd


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    direction: int  # +1 more means riskier, -1 more means safer, 0 no expected direction
    text_zh: str
    text_en: str
    categorical: bool = False
    in_catalog: bool = True


@cache
def info(name: str) -> FeatureInfo:
    """The catalog entry of ``name``; unknown columns get direction 0 and their own name as text."""
    from features.catalog import get_feature

    try:
        feature = get_feature(name)
    except KeyError:
        return FeatureInfo(name, 0, name, name, in_catalog=False)
    return FeatureInfo(
        name=feature.name,
        direction=int(feature.direction),
        text_zh=feature.description_zh,
        text_en=feature.description_en,
        categorical=feature.kind == "categorical",
    )


def known(name: str) -> bool:
    """Whether ``name`` is a catalog feature (or an extra enterprise column ``x_*``)."""
    return info(name).in_catalog


def directions(names: Iterable[str]) -> list[int]:
    """Expected risk direction per column (+1, -1 or 0), in order: the monotone constraints."""
    return [info(name).direction for name in names]


def is_categorical(name: str) -> bool:
    return info(name).categorical


def catalog_frame() -> pd.DataFrame:
    """The whole feature catalog as a table (logged with every model)."""
    from features.catalog import catalog_frame as frame

    return frame().reset_index()
