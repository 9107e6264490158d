"""The area model's coefficients (:mod:`rtl_gen.design.area`) and the clock rates the
folding planner assumes, per device family.

Fit by ``python benchmarks/area_model.py --refit`` (non-negative least squares, each row
weighted by one over its actual value, so the fit minimises relative error) on the
synthesis of the digits networks listed in that script's ``CONFIGS``, each built as
``--fit`` and a board build build it (no layer cycle counters, each layer's register stages
as the planner gives them): the planner's ``--fit up5k`` choices (one-row foldings with a
wide input port of ``P = 2``, 16 x 4, 32 x 2, 2 x 16 and 10 x 1 arrays, the term-pair
engine), with their weight ROMs in block RAM and shift drains too (UP5K only), the shipped
bundles on their default arrays, and smaller, larger, wider-lane, two-row and wide-input
foldings: 61 networks for the UP5K (5 with term-revealing PEs reading memory), 39 for the
LFE5U-85F,
synthesized for the UP5K (``ice40``: ``ICESTORM_LC`` after nextpnr packing) and the
LFE5U-85F (``ecp5``: ``TRELLIS_COMB`` after packing) with the project's pinned YoWASP
Yosys/nextpnr.  ``benchmarks/results/area_model.md`` lists estimate vs actual per network.

``logic`` and ``ff`` hold one coefficient per feature of
:data:`rtl_gen.design.area.FEATURES`; ``network`` is the chain's fixed ``(logic, ff)`` (held
at zero: every calibration network has two layers, so the per-layer constant takes it);
``bram_rom_fill`` / ``bram_ram_fill`` the least bits per block at which Yosys put a ROM / a
RAM in block RAM, the values that reproduce the most block RAM counts of these runs (the
ECP5 kept every RAM of these networks in distributed RAM).  Logic error of the fit
(2026-11-30; the ``ice40`` and ``ecp5`` rows are fit apart, the ECP5 last): every ``--fit
up5k`` choice within 5% on the UP5K; every network within 14% (the worst: the mixed
network's ECP5 foldings, -11% to -13%, and two small int4 foldings on the UP5K, +10% and
+13%, whose 17-bit logit FIFO Yosys splits between a block and the fabric, which the model
does not).  The term-revealing coefficients (``tr_layer``, ``tr_col`` and, for PEs reading
copies of the input banks, ``tr_layer_memory``, ``tr_col_memory``) are fit apart, the
other coefficients kept (``--refit-features``), on the term-revealing networks (2026-12-01:
8 on the UP5K, 3 on the LFE5U-85F, each within 3%); the ECP5 planner does not offer the
memory read, and its two memory coefficients repeat an earlier ``tr_layer`` and ``tr_col``.
"""

from __future__ import annotations

COEFFICIENTS = {
    "ice40": {"logic": (307.4771, 0.0, 2.8472, 0.5448, 1.7955, 1.8883, 2.3647, 665.9708,
                        144.5959, 0.4672, 0.0, 0.0987, 1.642, 0.6878, 0.8007, 414.5341, 86.2781),
              "ff": (0.0, 0.0, 1.5077, 0.1451, 0.5853, 0.4714, 1.6639, 424.9592, 23.0518, 0.0,
                     0.2158, 0.0228, 0.784, 0.5621, 0.1498, 180.7997, 37.1299),
              "network": (0.0, 0.0), "bram_rom_fill": 1152, "bram_ram_fill": 96},
    "ecp5": {"logic": (219.709, 0.2547, 2.8977, 0.0, 1.5157, 1.9149, 2.2288, 215.2318, 106.8074,
                       0.4792, 0.0, 0.0995, 0.1678, 0.2993, 0.6127, 194.4152, 108.4762),
             "ff": (0.0, 0.0, 1.0217, 0.0, 0.5748, 0.4062, 2.0493, 308.4096, 32.8397, 0.0243,
                    0.1832, 0.0072, 0.0318, 0.5361, 1.0696, 255.4439, 23.8396),
             "network": (0.0, 0.0), "bram_rom_fill": 3072, "bram_ram_fill": 1 << 30},
}

#: The convolution planner's core-engine coefficients (:mod:`rtl_gen.hw.conv_planner`): the
#: area model's first calibration (21 networks per device, the engines with cycle counters,
#: before the lean engines), over its first features
#: (:data:`rtl_gen.design.area.FEATURES_V1`), against which that planner's window-unit
#: constants (:data:`rtl_gen.hw.conv_planner.WINDOW_UNIT`) were fit on the MNIST CNNs' syntheses.
#: Kept until those constants are fit again on :data:`COEFFICIENTS`.
CONV_COEFFICIENTS = {
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

#: The unrolled engine's (:class:`~rtl_gen.hw.unrolled.UnrolledNetworkEngine`) ``(fixed, per
#: bit)`` logic and flip-flops against the bits of its datapath's carry chains
#: (:func:`rtl_gen.hw.planner.unrolled_logic_bits`: adder graphs, bias adds, shift-and-add
#: requantizers or the requantizer tables' address clamps, the logits' compares), fit by
#: non-negative least squares of the relative error (as ``python benchmarks/area_model.py
#: --refit`` fits the unrolled rows of ``benchmarks/results/network.json``) on the shipped
#: digits networks synthesized at ``--fit ecp5-85f`` with a register every second adder level:
#: binary, ternary and mixed with requantizer tables (11,982, 9,463 and 11,538
#: ``TRELLIS_COMB``, 2026-12-01) and with shift-and-add requantizers (17,914, 12,172, 15,408,
#: as recorded there on 2026-11-30, the design where block RAMs run short); each within
#: 7.2%.  ECP5 ``TRELLIS_COMB`` and ``TRELLIS_FF``; the iCE40 takes the same model (no
#: unrolled engine fits a UP5K; it only has to say so).  These are the engine pipelined every
#: second adder level (``stage = 2``, the default); every level (``stage = 1``) takes
#: :data:`UNROLLED_DEEP_COEFFICIENTS`.
UNROLLED_COEFFICIENTS = {"logic": (2016.6218, 1.3475), "ff": (2383.1773, 0.3448)}

#: :data:`UNROLLED_COEFFICIENTS` of the engine with a register after every adder level
#: (``stage = 1``, the planner's choice on the ECP5: :func:`rtl_gen.hw.planner.
#: unrolled_stage`), fit the same way on the syntheses at ``--fit ecp5-85f`` (2026-12-02) of
#: binary, ternary, mixed, int4, APoT4 and digits-tr with requantizer tables (11,319, 9,675,
#: 10,948, 20,571, 21,625 and 14,046 ``TRELLIS_COMB``) and PoT4 with shift-and-add ones (its
#: windows are too wide for tables: 23,797); each within 8.2%, and within 4% of the
#: shift-and-add int4, APoT4 and int8 (22,695, 26,035, 43,533).  Every adder is then a carry
#: chain of its own (Yosys no longer merges two levels into LUT4s): fewer LUT4s, more carry
#: cells and flip-flops.
UNROLLED_DEEP_COEFFICIENTS = {"logic": (2842.969, 1.1968), "ff": (2069.7402, 0.9014)}
