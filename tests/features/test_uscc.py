"""USCC check character (GB 32100-2015)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.uscc import USCC_CHARSET, USCC_WEIGHTS, is_valid_uscc, uscc_check_char

REAL_CODE = "91350100M000100Y43"  # a real, published code


def test_weights_are_powers_of_three_mod_31():
    assert USCC_WEIGHTS[:5] == (1, 3, 9, 27, 81 % 31)
    assert len(USCC_WEIGHTS) == 17


def test_check_char_of_real_code_worked_by_hand():
    # values: 9 1 3 5 0 1 0 0 M=21 0 0 0 1 0 0 Y=30 4
    # weights: 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
    # sum = 9 + 3 + 27 + 135 + 26 + 420 + 8 + 900 + 112 = 1640; 1640 mod 31 = 28; 31 - 28 = 3 -> '3'
    assert uscc_check_char(REAL_CODE[:17]) == "3"
    assert is_valid_uscc(REAL_CODE)


def test_check_value_31_wraps_to_zero():
    # A body whose weighted sum is a multiple of 31 has check (31 - 0) mod 31 = 0 -> '0'.
    assert uscc_check_char("0" * 17) == "0"
    assert is_valid_uscc("0" * 18)


@pytest.mark.parametrize(
    "code, why",
    [
        ("91350100M000100Y44", "wrong check character"),
        ("91350100M000100Y4", "17 characters"),
        ("91350100M000100Y433", "19 characters"),
        ("91350100m000100Y43", "lower case is not in the charset"),
        ("91350100I000100Y43", "I is not in the charset"),
        ("", "empty"),
    ],
)
def test_invalid_codes(code, why):
    assert not is_valid_uscc(code), why


def test_non_string_is_invalid():
    assert not is_valid_uscc(None)  # type: ignore[arg-type]
    assert not is_valid_uscc(913501001)  # type: ignore[arg-type]


def test_bad_body_raises_with_the_offending_character():
    with pytest.raises(ValueError, match="'O' which is not|contains 'O'"):
        uscc_check_char("91350100O000100Y4")
    with pytest.raises(ValueError, match="17 characters, got 3"):
        uscc_check_char("913")


bodies = st.text(alphabet=USCC_CHARSET, min_size=17, max_size=17)


@given(bodies)
def test_appending_the_check_char_makes_a_valid_code(body):
    assert is_valid_uscc(body + uscc_check_char(body))


@given(bodies, st.integers(0, 16), st.integers(1, 30))
def test_any_single_substitution_is_detected(body, position, shift):
    # 31 is prime and every weight is non-zero mod 31, so changing one character always changes the check.
    code = body + uscc_check_char(body)
    changed = USCC_CHARSET[(USCC_CHARSET.index(code[position]) + shift) % 31]
    tampered = code[:position] + changed + code[position + 1 :]
    assert not is_valid_uscc(tampered)
