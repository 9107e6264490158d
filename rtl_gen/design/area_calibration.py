"""The area model's coefficients (:mod:`rtl_gen.design.area`) and the clock rates the
folding planner assumes, per device family.

Fit by ``python benchmarks/area_model.py --refit`` (non-negative least squares, each row
weighted by one over its actual value, so the fit minimises relative error) on the
synthesis of the digits networks listed in that script's ``CONFIGS``: the shipped binary,
ternary, pot4, apot4, int4 and int8 bundles on their default arrays and on smaller, larger,
wider-lane, two-row and wide-input foldings, 21 networks per device, synthesized for the UP5K
(``ice40``: ``ICESTORM_LC`` after nextpnr packing) and the LFE5U-85F (``ecp5``:
``TRELLIS_COMB`` after packing) with Yosys 0.5x/nextpnr of the project's pinned YoWASP.
``benchmarks/results/area_model.md`` lists estimate vs actual per network.

``logic`` and ``ff`` hold one coefficient per feature of
:data:`rtl_gen.design.area.FEATURES`; ``network`` is the chain's fixed ``(logic, ff)`` (held
at zero: every calibration network has two layers, so the per-layer constant takes it);
``bram_rom_fill`` / ``bram_ram_fill`` the least bits per block at which Yosys put a ROM / a
RAM in block RAM, the values that reproduce every block RAM count of these runs (the ECP5
kept every RAM of these networks in distributed RAM).  Logic error of the fit: within 5%
on the UP5K for every network that fits it (the worst, 15%, is a 32-column int4 network
of 2.7 times the UP5K), within 11% on the LFE5U-85F except the 32-column int4 network
(13%).
"""

from __future__ import annotations

COEFFICIENTS = {
    "ice40": {"logic": (380.8963, 68.1908, 1.8449, 3.2225, 2.5058, 0.0, 0.0977, 2.4165),
              "ff": (192.1357, 72.6301, 0.3343, 0.6864, 0.3408, 0.0, 0.0258, 1.3998),
              "network": (0.0, 0.0), "bram_rom_fill": 1152, "bram_ram_fill": 96},
    "ecp5": {"logic": (0.0, 0.0, 2.3929, 4.2061, 2.9988, 0.5668, 0.135, 0.0139),
             "ff": (159.3383, 64.5469, 0.2213, 0.6878, 0.3733, 0.0, 0.0345, 0.0751),
             "network": (0.0, 0.0), "bram_rom_fill": 4096, "bram_ram_fill": 1 << 30},
}

#: The clock (MHz) the planner quotes rates at unless told: the digits networks' median
#: nextpnr Fmax in ``benchmarks/results/network.md`` (UP5K 32.8-37.1, LFE5U-85F 74.9-88.8)
#: rounded down to keep a margin.
FMAX_MHZ = {"ice40": 32.0, "ecp5": 75.0}
