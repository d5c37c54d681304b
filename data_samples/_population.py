"""The enterprise population of a synthetic world: who exists, where, how big — and their names and USCCs.

Everything here is drawn once, when a world is created, from the ``population`` part of the world parameters.
All functions are vectorised over enterprises; the only strings built are the final names and codes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import SECTOR_CODES
from features.uscc import USCC_CHARSET, USCC_WEIGHTS

SPECIAL_FLAGS = ("major_hazard_source", "dust_explosion", "ammonia_refrigeration", "confined_space")

# ---------------------------------------------------------------------------------------------
# Names: {city}{township?}{trade name}{trade word}{legal form}, e.g. 高平市马村鑫源煤业有限公司
# ---------------------------------------------------------------------------------------------

TRADE_NAMES = (
    "兴达", "鑫源", "宏泰", "华晋", "恒通", "瑞丰", "永盛", "金泰", "晋源", "盛鑫", "泰和", "利民", "广源", "昌盛",
    "华泰", "中晋", "宝鑫", "天泰", "新宇", "东方", "润泽", "嘉禾", "福达", "荣鑫", "隆昌", "三晋", "太行", "丹河",
    "炎帝", "长平", "泫氏", "鼎盛", "聚源", "汇丰", "正和", "通达", "兴旺", "金鼎", "凯达", "明泰", "万通", "德隆",
    "晋城", "顺安", "康泰", "永安", "佳和", "旭日", "瑞祥", "光明", "立信", "博远", "恒源", "锦华", "富源", "平安",
)

TRADE_WORDS: dict[str, tuple[str, ...]] = {
    "coal_mine": ("煤业", "煤矿"),
    "noncoal_mine": ("矿业", "石料"),
    "hazchem": ("化工", "化学", "精细化工"),
    "fireworks": ("烟花爆竹",),
    "metal_smelting": ("冶炼", "铸造"),
    "metallurgy": ("钢铁", "冶金"),
    "nonferrous": ("铝业", "有色金属"),
    "building_materials": ("建材", "水泥", "新型建材"),
    "machinery": ("机械制造", "机电设备"),
    "light_industry": ("食品", "包装", "塑料制品"),
    "textile": ("丝织", "纺织", "服饰"),
    "tobacco": ("烟草",),
    "commerce": ("商贸", "贸易"),
    "construction": ("建筑工程", "建设工程"),
    "gas": ("燃气", "天然气"),
    "road_transport": ("运输", "客运", "汽车运输"),
    "crowded_place": ("大酒店", "购物广场", "商厦"),
    "warehouse_logistics": ("仓储物流", "物流"),
    "oil_gas_pipeline": ("油气管道", "输气"),
    "special_equipment": ("电梯", "锅炉", "起重设备"),
    "other": ("实业", "科技"),
}
LEGAL_FORMS = ("有限公司", "有限责任公司", "股份有限公司")
_LEGAL_FORM_SHARES = (0.7, 0.2, 0.1)


def enterprise_names(sector: np.ndarray, township_short: np.ndarray, city: str, rng: np.random.Generator) -> pa.Array:
    """Plausible company names; ``township_short`` is the township without 镇/乡/街道 (e.g. 马村)."""
    n = len(sector)
    trade = np.asarray(TRADE_NAMES, dtype=object)[rng.integers(0, len(TRADE_NAMES), n)]
    word_table = [TRADE_WORDS[code] for code in SECTOR_CODES]
    lengths = np.array([len(w) for w in word_table])
    word_pick = (rng.random(n) * lengths[sector]).astype(np.int64)
    flat_words = np.asarray([w for words in word_table for w in words], dtype=object)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    words = flat_words[offsets[sector] + word_pick]
    form = np.asarray(LEGAL_FORMS, dtype=object)[rng.choice(len(LEGAL_FORMS), n, p=_LEGAL_FORM_SHARES)]
    # About a third of local firms carry their township in the name, as registrations often do.
    place = np.where(rng.random(n) < 0.3, township_short.astype(object), "")
    return pc.binary_join_element_wise(
        pa.array(np.full(n, city, dtype=object)),
        pa.array(place),
        pa.array(trade),
        pa.array(words),
        pa.array(form),
        "",
    )


# ---------------------------------------------------------------------------------------------
# USCC (GB 32100-2015): registration authority 9 (market regulation), entity type 1 (enterprise),
# 6-digit administrative division, 9-character organisation code (GB 11714, own check), check character.
# ---------------------------------------------------------------------------------------------

_CHARSET = np.frombuffer(USCC_CHARSET.encode("ascii"), dtype=np.uint8)
_USCC_WEIGHTS = np.array(USCC_WEIGHTS, dtype=np.int64)
_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)


def _gb11714_values(chars: np.ndarray) -> np.ndarray:
    """GB 11714 character values: digits 0-9, letters A=10 … Z=35."""
    chars = chars.astype(np.int64)
    return np.where(chars <= ord("9"), chars - ord("0"), chars - ord("A") + 10)


def uscc_codes(positions: np.ndarray, founded_year: np.ndarray, county_code: str) -> np.ndarray:
    """Distinct, valid USCCs (as an ``<U18`` array), one per enterprise position.

    The organisation code is a bijective scramble of the position, so codes never collide: firms registered
    from 2016 get the newer ``MA`` + 6 base-31 characters form, older ones 8 digits. Both carry the GB 11714
    check character at position 17 and the GB 32100 check character at position 18.
    """
    n = len(positions)
    positions = np.asarray(positions, dtype=np.int64)
    body = np.empty((n, 8), dtype=np.uint8)
    # Old style: 8 decimal digits of (position * odd multiplier + offset) mod 10^8 -- a bijection below 10^8.
    old = (positions * 48_271 + 10_338_571) % 100_000_000
    for k in range(8):
        body[:, 7 - k] = ord("0") + (old // 10**k) % 10
    # New style: "MA" + 6 base-31 charset characters of a scramble mod 31^6.
    new = (positions * 7_919 + 123_457) % 31**6
    is_new = founded_year >= 2016
    body_new = np.empty((n, 8), dtype=np.uint8)
    body_new[:, 0], body_new[:, 1] = ord("M"), ord("A")
    for k in range(6):
        body_new[:, 7 - k] = _CHARSET[(new // 31**k) % 31]
    body[is_new] = body_new[is_new]
    org_sum = (_gb11714_values(body) * _ORG_WEIGHTS).sum(axis=1)
    org_check = 11 - org_sum % 11  # 10 -> 'X', 11 -> '0'
    org_char = np.where(org_check == 10, ord("X"), np.where(org_check == 11, ord("0"), ord("0") + org_check))

    first17 = np.empty((n, 17), dtype=np.uint8)
    first17[:, 0], first17[:, 1] = ord("9"), ord("1")
    first17[:, 2:8] = np.frombuffer(county_code.encode("ascii"), dtype=np.uint8)
    first17[:, 8:16] = body
    first17[:, 16] = org_char
    lookup = np.full(128, -1, dtype=np.int64)
    lookup[_CHARSET] = np.arange(31)
    values = lookup[first17]
    check = _CHARSET[(31 - (values * _USCC_WEIGHTS).sum(axis=1) % 31) % 31]
    codes = np.concatenate([first17, check[:, None]], axis=1)
    return codes.view("S18").ravel().astype("U18")
