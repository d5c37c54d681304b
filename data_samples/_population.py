"""The enterprise population of a synthetic world: who exists, where, how big — and their names and USCCs.

Everything here is drawn once, when a world is created, from the ``population`` part of the world parameters.
All functions are vectorised over enterprises; the only strings built are the final names and codes.
"""

from __future__ import annotations

import math

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


def enterprise_names(sector: np.ndarray, township_short: np.ndarray, city, rng: np.random.Generator) -> pa.Array:
    """Plausible company names; ``township_short`` is the township without 镇/乡/街道 (e.g. 马村), ``city`` the
    leading place name (one for all, or one per enterprise: county or prefecture city)."""
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
        pa.array(np.broadcast_to(np.asarray(city, dtype=object), (n,))),
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


# ---------------------------------------------------------------------------------------------
# Townships (乡镇/街道): one county for small worlds, several counties beyond
# ---------------------------------------------------------------------------------------------

# County-level divisions of Shanxi as (display name, prefix of local company names), the home county's
# neighbours first. Districts are qualified by their prefecture city (there is a 城区 in 晋城 and in 阳泉).
COUNTIES: tuple[tuple[str, str], ...] = (
    ("高平市", "高平市"), ("泽州县", "泽州县"), ("阳城县", "阳城县"), ("陵川县", "陵川县"), ("沁水县", "沁水县"),
    ("晋城市城区", "晋城市"), ("晋城经开区", "晋城市"), ("长子县", "长子县"), ("长治市潞州区", "长治市"),
    ("长治市上党区", "长治市"), ("长治市屯留区", "长治市"), ("长治市潞城区", "长治市"), ("襄垣县", "襄垣县"),
    ("平顺县", "平顺县"), ("黎城县", "黎城县"), ("壶关县", "壶关县"), ("武乡县", "武乡县"), ("沁县", "沁县"),
    ("沁源县", "沁源县"), ("晋中市榆次区", "晋中市"), ("晋中市太谷区", "晋中市"), ("榆社县", "榆社县"),
    ("左权县", "左权县"), ("和顺县", "和顺县"), ("昔阳县", "昔阳县"), ("寿阳县", "寿阳县"), ("祁县", "祁县"),
    ("平遥县", "平遥县"), ("灵石县", "灵石县"), ("介休市", "介休市"), ("临汾市尧都区", "临汾市"),
    ("曲沃县", "曲沃县"), ("翼城县", "翼城县"), ("襄汾县", "襄汾县"), ("洪洞县", "洪洞县"), ("古县", "古县"),
    ("安泽县", "安泽县"), ("浮山县", "浮山县"), ("乡宁县", "乡宁县"), ("蒲县", "蒲县"), ("汾西县", "汾西县"),
    ("侯马市", "侯马市"), ("霍州市", "霍州市"), ("运城市盐湖区", "运城市"), ("临猗县", "临猗县"),
    ("万荣县", "万荣县"), ("闻喜县", "闻喜县"), ("稷山县", "稷山县"), ("新绛县", "新绛县"), ("绛县", "绛县"),
    ("垣曲县", "垣曲县"), ("夏县", "夏县"), ("平陆县", "平陆县"), ("芮城县", "芮城县"), ("永济市", "永济市"),
    ("河津市", "河津市"), ("太原市小店区", "太原市"), ("太原市迎泽区", "太原市"), ("太原市杏花岭区", "太原市"),
    ("太原市尖草坪区", "太原市"), ("太原市万柏林区", "太原市"), ("太原市晋源区", "太原市"), ("清徐县", "清徐县"),
    ("阳曲县", "阳曲县"), ("娄烦县", "娄烦县"), ("古交市", "古交市"), ("阳泉市城区", "阳泉市"),
    ("阳泉市郊区", "阳泉市"), ("平定县", "平定县"), ("盂县", "盂县"), ("吕梁市离石区", "吕梁市"),
    ("文水县", "文水县"), ("交城县", "交城县"), ("兴县", "兴县"), ("临县", "临县"), ("柳林县", "柳林县"),
    ("石楼县", "石楼县"), ("岚县", "岚县"), ("方山县", "方山县"), ("中阳县", "中阳县"), ("交口县", "交口县"),
    ("孝义市", "孝义市"), ("汾阳市", "汾阳市"), ("忻州市忻府区", "忻州市"), ("定襄县", "定襄县"),
    ("五台县", "五台县"), ("代县", "代县"), ("繁峙县", "繁峙县"), ("宁武县", "宁武县"), ("静乐县", "静乐县"),
    ("原平市", "原平市"), ("河曲县", "河曲县"), ("保德县", "保德县"), ("朔州市朔城区", "朔州市"),
    ("朔州市平鲁区", "朔州市"), ("山阴县", "山阴县"), ("应县", "应县"), ("怀仁市", "怀仁市"),
    ("大同市平城区", "大同市"), ("大同市云冈区", "大同市"), ("大同市云州区", "大同市"), ("阳高县", "阳高县"),
    ("广灵县", "广灵县"), ("灵丘县", "灵丘县"), ("浑源县", "浑源县"), ("左云县", "左云县"),
)

# Rural towns and townships (镇/乡) typical of south-east Shanxi, and urban sub-district (街道) names. A county
# draws its own handful; the same name in two counties is two townships (names are county-qualified).
RURAL_TOWNSHIPS = (
    "南村镇", "北义城镇", "巴公镇", "大阳镇", "周村镇", "犁川镇", "晋庙铺镇", "金村镇", "高都镇", "下村镇",
    "大东沟镇", "川底镇", "柳树口镇", "山河镇", "李寨乡", "南岭乡", "北留镇", "润城镇", "町店镇", "芹池镇",
    "次营镇", "横河镇", "河北镇", "蟒河镇", "东冶镇", "白桑乡", "寺头乡", "西河乡", "演礼乡", "固隆乡",
    "驾岭乡", "礼义镇", "附城镇", "西河底镇", "平城镇", "杨村镇", "潞城镇", "秦家庄乡", "古郊乡", "六泉乡",
    "马圪当乡", "龙港镇", "中村镇", "郑庄镇", "端氏镇", "嘉峰镇", "郑村镇", "柿庄镇", "土沃乡", "张村乡",
    "苏庄乡", "胡底乡", "固县乡", "十里乡", "韩店镇", "苏店镇", "荫城镇", "西火镇", "八义镇", "贾掌镇",
    "丁村乡", "余吾镇", "张店镇", "鲍店镇", "石哲镇", "大堡头镇", "慈林镇", "色头镇", "南漳镇", "碾张乡",
    "永录乡", "石末乡", "东阳镇", "修文镇", "郭家堡乡", "长凝镇", "北田镇", "范村镇", "胡村镇", "水秀乡",
)
URBAN_TOWNSHIPS = (
    "东城街道", "西城街道", "南城街道", "北城街道", "城东街道", "城西街道", "城南街道", "城北街道", "东街街道",
    "西街街道", "南街街道", "北街街道", "凤城街道", "新城街道", "开发区街道",
)


def township_short(name: str) -> str:
    """A township's name without its county and its 镇/乡/街道 suffix, as firms put it in their names (马村)."""
    return name.rpartition("·")[2].removesuffix("街道").removesuffix("镇").removesuffix("乡")


def township_layout(n_enterprises: int, pop, rng: np.random.Generator) -> dict:
    """Townships (and their counties and parks) for a world of ``n_enterprises``.

    Up to ``pop.single_county_max`` enterprises: the home county's own township list (``pop.townships``,
    unqualified names such as 马村镇) and parks. Beyond: about one township per ``pop.enterprises_per_township``
    enterprises, as whole counties of 10-19 townships (``县·乡镇`` names such as 泽州县·北义城镇), the home county
    first with its real townships and parks, then the others of :data:`COUNTIES` with townships drawn from
    :data:`RURAL_TOWNSHIPS` / :data:`URBAN_TOWNSHIPS` and one or two industrial parks each. Once every county
    is used, townships grow instead. ``rng`` is only drawn from in the multi-county case.

    Returns ``names``, ``weights`` (relative enterprise counts), ``urban`` (bool per township), ``prefix``
    (company-name prefix per township: county or prefecture city) and ``parks`` (park name -> township positions).
    """
    home_names = tuple(pop.townships)
    home_weights = [float(pop.townships[t]) for t in home_names]
    if n_enterprises <= pop.single_county_max:
        parks = {park: tuple(home_names.index(t) for t in townships) for park, townships in pop.parks.items()}
        return {"names": home_names, "weights": np.asarray(home_weights),
                "urban": np.array([t in pop.urban_townships for t in home_names]),
                "prefix": np.full(len(home_names), pop.city, dtype=object), "parks": parks}

    target = math.ceil(n_enterprises / pop.enterprises_per_township)
    home = pop.city
    names = [f"{home}·{t}" for t in home_names]
    weights = list(home_weights)
    urban = [t in pop.urban_townships for t in home_names]
    prefix = [home] * len(home_names)
    parks = {park: tuple(home_names.index(t) for t in townships) for park, townships in pop.parks.items()}
    for county, county_prefix in COUNTIES:
        if len(names) >= target:
            break
        if county == home:
            continue
        n_urban = int(rng.integers(1, 4))
        n_rural = int(rng.integers(9, 17))
        rural = [RURAL_TOWNSHIPS[i] for i in rng.choice(len(RURAL_TOWNSHIPS), n_rural, replace=False)]
        town = [URBAN_TOWNSHIPS[i] for i in rng.choice(len(URBAN_TOWNSHIPS), n_urban, replace=False)]
        first = len(names)
        names += [f"{county}·{t}" for t in town + rural]
        weights += list(rng.uniform(1.2, 1.8, n_urban)) + list(rng.lognormal(-0.1, 0.3, n_rural))
        urban += [True] * n_urban + [False] * n_rural
        prefix += [county_prefix] * (n_urban + n_rural)
        # One or two parks, each over two or three rural townships (the home county has parks in half of its).
        stem = _park_stem(county)
        kinds = ("经济技术开发区", "工业园区")[: int(rng.integers(1, 3))]
        sites = first + n_urban + rng.choice(n_rural, 6, replace=False)
        for k, kind in enumerate(kinds):
            parks[f"{stem}{kind}"] = tuple(int(s) for s in sites[3 * k: 3 * k + int(rng.integers(2, 4))])
    return {"names": tuple(names), "weights": np.asarray(weights), "urban": np.asarray(urban),
            "prefix": np.asarray(prefix, dtype=object), "parks": parks}


def _park_stem(county: str) -> str:
    """The place word of a county's park names: 泽州县 -> 泽州, 长治市潞州区 -> 潞州, 阳泉市城区 -> 阳泉城区."""
    if county.endswith("经开区"):
        return county.removesuffix("经开区")
    city, _, district = county.partition("市")
    if district:  # a district of a prefecture city
        return city + district if len(district) <= 2 else district.removesuffix("区")
    stem = county.removesuffix("县").removesuffix("市")
    return stem if len(stem) >= 2 else county
