"""The FPGA devices rtl_gen targets, and what each offers (pure data, no Amaranth).

The hardware generator budgets DSP blocks against :attr:`Device.dsp`, the flow picks the
synthesis script and the place-and-route tool from :attr:`Device.family`, and reports
compare utilisation with these totals.
"""

from __future__ import annotations

import dataclasses

__all__ = ["DEVICES", "Device", "get_device"]


@dataclasses.dataclass(frozen=True)
class Device:
    """One FPGA part.

    Members
    -------
    name:
        Short name used on the command line (``up5k``, ``ecp5-85f``).
    family:
        ``ice40`` or ``ecp5``: selects ``synth_ice40``/``synth_ecp5`` and the nextpnr tool.
    part, package:
        The arguments nextpnr wants (``--up5k --package sg48``; ``--85k --package CABGA381``).
    luts, dsp, bram_bits:
        LUT4s, hard multipliers (iCE40 ``SB_MAC16``, ECP5 ``MULT18X18D``) and block RAM bits.
    dsp_cell:
        The Yosys cell name of one hard multiplier.
    clock_pin:
        A dedicated clock input of the package (the board's oscillator pin): where the flow's
        harness puts its clock when nextpnr finds no path from a freely placed pad to the
        global clock network (:func:`rtl_gen.flow.place_and_route`); ``""`` for none.
    """

    name: str
    family: str
    part: str
    package: str
    luts: int
    dsp: int
    bram_bits: int
    dsp_cell: str
    clock_pin: str = ""


DEVICES: dict[str, Device] = {
    d.name: d for d in (
        # iCE40 UltraPlus 5K (iCEBreaker): 5280 LCs, 8 SB_MAC16, 30 EBR of 4 kbit; pin 35
        # (global buffer input GBIN) takes the 12 MHz oscillator.
        Device("up5k", "ice40", "up5k", "sg48", 5280, 8, 30 * 4096, "SB_MAC16", "35"),
        # ECP5 LFE5U-85F (ULX3S-85F): 83.6k LUT4, 156 18x18 multipliers, 208 EBR of 18 kbit;
        # G2 (PCLKT6_0) takes the 25 MHz oscillator.
        Device("ecp5-85f", "ecp5", "85k", "CABGA381", 83640, 156, 208 * 18432, "MULT18X18D",
               "G2"),
        # ECP5 LFE5U-25F (OrangeCrab): 24k LUT4, 28 multipliers, 56 EBR; A9 (PCLKT1_0) takes
        # the 48 MHz oscillator.
        Device("ecp5-25f", "ecp5", "25k", "CSFBGA285", 24288, 28, 56 * 18432, "MULT18X18D",
               "A9"),
    )
}


def get_device(name: str) -> Device:
    """The device called ``name``.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    try:
        return DEVICES[name]
    except KeyError:
        raise ValueError(f"unknown device {name!r}; expected one of "
                         f"{', '.join(DEVICES)}") from None
