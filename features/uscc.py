"""Unified social credit codes (统一社会信用代码, GB 32100-2015): the check character.

A code has 18 characters from :data:`USCC_CHARSET` (digits and upper-case letters without I, O, S, V, Z).
The 18th is a check character over the first 17::

    C18 = charset[(31 - Σ value_i · w_i) mod 31],   w_i = 3^(i-1) mod 31,   i = 1..17

where ``value_i`` is the character's position in the charset. Some genuine codes issued before the standard
fail this check; the validator handles them with an allow-list, not here.
"""

from __future__ import annotations

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_LENGTH = 18

_VALUE = {char: value for value, char in enumerate(USCC_CHARSET)}
# 3^(i-1) mod 31 for i = 1..17: 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28.
USCC_WEIGHTS: tuple[int, ...] = tuple(pow(3, i, 31) for i in range(17))


def uscc_check_char(first17: str) -> str:
    """The check character (18th) for the first 17 characters of a USCC.

    >>> uscc_check_char("91350100M000100Y4")
    '3'
    """
    if len(first17) != USCC_LENGTH - 1:
        raise ValueError(f"a USCC body has 17 characters, got {len(first17)}: {first17!r}")
    try:
        total = sum(_VALUE[char] * weight for char, weight in zip(first17, USCC_WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"{first17!r} contains {exc.args[0]!r}, which is not in the USCC charset") from exc
    return USCC_CHARSET[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    """True when ``code`` has 18 charset characters and its check character matches (case-sensitive)."""
    if not isinstance(code, str) or len(code) != USCC_LENGTH or any(c not in _VALUE for c in code):
        return False
    return uscc_check_char(code[:17]) == code[17]
