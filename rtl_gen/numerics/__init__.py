"""The arithmetic contract of rtl_gen, in pure numpy (``NUMERICS.md`` in code).

Everything the hardware computes is defined here first, vectorized and exact in ``int64``:

* :mod:`~rtl_gen.numerics.schemes`: weight schemes (binary, ternary, PoT, APoT, int-N,
  sign-magnitude), float → codes → ``w_int``;
* :mod:`~rtl_gen.numerics.fixedpoint`: the requantizer (``M``, ``S`` for a float scale) and
  the accumulator-width rule;
* :mod:`~rtl_gen.numerics.terms`: HESE digits and terms, term revealing by group and budget,
  per-value data-term truncation, the term-pair dot product;
* :mod:`~rtl_gen.numerics.bitplane`: bit-plane decomposition and the AND + popcount dot
  product;
* :mod:`~rtl_gen.numerics.minifloat`: minifloat (E, M, bias) codecs, the MPWN XOR
  signed-bits and ternary bitwise products, the exponent-width rule and the ASB score.

This package never imports Amaranth: the golden model and the tests run without it.
"""

from .bitplane import (
    and_popcount,
    bit_planes,
    bitplane_dot,
    bitplane_steps,
    plane_weights,
    pm1_plane_dot,
)
from .fixedpoint import (
    MAX_SHIFT,
    acc_bits,
    requant_params,
    requantize,
    signed_bits,
)
from .minifloat import (
    MPWN_BITS,
    MinifloatFormat,
    asb_score,
    bits_to_f32,
    f32_to_bits,
    recommend_exponent_bits,
    ternary_bitwise,
    xor_signed_bits,
)
from .schemes import (
    SCHEME_KINDS,
    QuantizedWeights,
    WeightScheme,
    parse_scheme,
)
from .terms import (
    MAX_BITS,
    GroupTerms,
    group_term_order,
    hese_digits,
    hese_terms,
    prefix_digits,
    reveal_digits,
    term_count,
    term_pair_dot,
    term_reveal,
    truncate_digits,
    truncate_terms,
)

__all__ = [
    "MAX_BITS",
    "MAX_SHIFT",
    "MPWN_BITS",
    "SCHEME_KINDS",
    "GroupTerms",
    "MinifloatFormat",
    "QuantizedWeights",
    "WeightScheme",
    "acc_bits",
    "and_popcount",
    "asb_score",
    "bit_planes",
    "bitplane_dot",
    "bitplane_steps",
    "bits_to_f32",
    "f32_to_bits",
    "group_term_order",
    "hese_digits",
    "hese_terms",
    "parse_scheme",
    "plane_weights",
    "pm1_plane_dot",
    "prefix_digits",
    "recommend_exponent_bits",
    "requant_params",
    "requantize",
    "reveal_digits",
    "signed_bits",
    "term_count",
    "term_pair_dot",
    "term_reveal",
    "ternary_bitwise",
    "truncate_digits",
    "truncate_terms",
    "xor_signed_bits",
]
