"""PLL settings for the iCE40 ``SB_PLL40`` and the ECP5 ``EHXPLLL``, and the clock domain
built on them.

The calculators search the divider space the same way the Project IceStorm / Project Trellis
tools do, so that they give the same answers as ``icepll`` and ``ecppll`` (the tests compare
them with ``yowasp-icepll`` and ``yowasp-ecppll``):

* :func:`ice40_pll`: ``SB_PLL40`` with ``FEEDBACK_PATH="SIMPLE"``: F_PFD = F_IN / (DIVR+1) in
  [10, 133] MHz, F_VCO = F_PFD * (DIVF+1) in [533, 1066] MHz, F_OUT = F_VCO / 2**DIVQ; the
  closest F_OUT wins (the first found on a tie), FILTER_RANGE follows from F_PFD.
* :func:`ecp5_pll`: ``EHXPLLL`` with CLKOP fed back: F_PFD = F_IN / CLKI_DIV in
  [3.125, 400] MHz, F_OUT = F_PFD * CLKFB_DIV, F_VCO = F_OUT * CLKOP_DIV in [400, 800] MHz;
  the closest F_OUT wins, a tie goes to the VCO nearest 600 MHz.  ``ecppll`` computes in
  single precision, and so does this (the CLKOP_CPHASE it derives depends on the rounding).

:func:`pll_domain` instantiates the primitive and creates the ``sync`` clock domain from its
output, held in reset until the PLL locks (and while an optional button is pressed).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, Signal, Value
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["Ecp5Pll", "Ice40Pll", "ecp5_pll", "ice40_pll", "pll_domain"]


# --- iCE40 --------------------------------------------------------------------------------

#: ``icepll``'s limits (MHz): PLL input, output, phase detector and VCO.
ICE40_FIN = (10.0, 133.0)
ICE40_FOUT = (16.0, 275.0)
ICE40_PFD = (10.0, 133.0)
ICE40_VCO = (533.0, 1066.0)


@dataclasses.dataclass(frozen=True)
class Ice40Pll:
    """One ``SB_PLL40`` setting (``FEEDBACK_PATH="SIMPLE"``); frequencies in MHz."""

    fin_mhz: float
    divr: int
    divf: int
    divq: int
    filter_range: int
    fout_mhz: float
    fvco: float
    fpfd: float

    @property
    def parameters(self) -> dict:
        """The primitive's parameters, as Amaranth ``p_`` keyword arguments."""
        return {"p_FEEDBACK_PATH": "SIMPLE", "p_DIVR": self.divr, "p_DIVF": self.divf,
                "p_DIVQ": self.divq, "p_FILTER_RANGE": self.filter_range}


def _ice40_filter_range(fpfd: float) -> int:
    return (1 if fpfd < 17 else 2 if fpfd < 26 else 3 if fpfd < 44 else
            4 if fpfd < 66 else 5 if fpfd < 101 else 6)


def ice40_pll(fin_mhz: float, fout_mhz: float) -> Ice40Pll:
    """The ``SB_PLL40`` dividers whose output is closest to ``fout_mhz`` (as ``icepll``).

    Raises
    ------
    ValueError
        When ``fin_mhz`` or ``fout_mhz`` is outside what the PLL takes or makes
        (``icepll``'s limits: input 10-133 MHz, output 16-275 MHz).
    """
    fin, fout = float(fin_mhz), float(fout_mhz)
    if not ICE40_FIN[0] <= fin <= ICE40_FIN[1]:
        raise ValueError(f"iCE40 PLL input {fin:g} MHz is outside {ICE40_FIN[0]:g}-"
                         f"{ICE40_FIN[1]:g} MHz")
    if not ICE40_FOUT[0] <= fout <= ICE40_FOUT[1]:
        raise ValueError(f"iCE40 PLL output {fout:g} MHz is not reachable: the SB_PLL40 makes "
                         f"{ICE40_FOUT[0]:g}-{ICE40_FOUT[1]:g} MHz")
    best = None
    for divr in range(16):
        fpfd = fin / (divr + 1)
        if not ICE40_PFD[0] <= fpfd <= ICE40_PFD[1]:
            continue
        for divf in range(128):
            fvco = fpfd * (divf + 1)
            if not ICE40_VCO[0] <= fvco <= ICE40_VCO[1]:
                continue
            for divq in range(1, 7):
                f = fvco * 2.0 ** -divq
                if best is None or abs(f - fout) < abs(best[0] - fout):
                    best = (f, divr, divf, divq, fpfd, fvco)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {fout:g} MHz from {fin:g} MHz")
    f, divr, divf, divq, fpfd, fvco = best
    return Ice40Pll(fin_mhz=fin, divr=divr, divf=divf, divq=divq,
                    filter_range=_ice40_filter_range(fpfd), fout_mhz=f, fvco=fvco, fpfd=fpfd)


# --- ECP5 ---------------------------------------------------------------------------------

#: ``ecppll``'s limits (MHz).
ECP5_FIN = (8.0, 400.0)
ECP5_FOUT = (10.0, 400.0)
ECP5_PFD = (3.125, 400.0)
ECP5_VCO = (400.0, 800.0)


@dataclasses.dataclass(frozen=True)
class Ecp5Pll:
    """One ``EHXPLLL`` setting, CLKOP fed back to CLKFB; frequencies in MHz."""

    fin_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int
    fout_mhz: float
    fvco: float
    fpfd: float

    @property
    def parameters(self) -> dict:
        """Parameters and attributes as in ``ecppll``'s Verilog (Amaranth keyword form)."""
        return {
            "a_FREQUENCY_PIN_CLKI": f"{self.fin_mhz:g}",
            "a_FREQUENCY_PIN_CLKOP": f"{self.fout_mhz:g}",
            "a_ICP_CURRENT": "12", "a_LPF_RESISTOR": "8",
            "a_MFG_ENABLE_FILTEROPAMP": "1", "a_MFG_GMCREF_SEL": "2",
            "p_PLLRST_ENA": "DISABLED", "p_INTFB_WAKE": "DISABLED",
            "p_STDBY_ENABLE": "DISABLED", "p_DPHASE_SOURCE": "DISABLED",
            "p_OUTDIVIDER_MUXA": "DIVA", "p_OUTDIVIDER_MUXB": "DIVB",
            "p_OUTDIVIDER_MUXC": "DIVC", "p_OUTDIVIDER_MUXD": "DIVD",
            "p_CLKI_DIV": self.clki_div, "p_CLKOP_ENABLE": "ENABLED",
            "p_CLKOP_DIV": self.clkop_div, "p_CLKOP_CPHASE": self.clkop_cphase,
            "p_CLKOP_FPHASE": 0, "p_FEEDBK_PATH": "CLKOP", "p_CLKFB_DIV": self.clkfb_div,
        }


def ecp5_pll(fin_mhz: float, fout_mhz: float) -> Ecp5Pll:
    """The ``EHXPLLL`` dividers whose CLKOP is closest to ``fout_mhz`` (as ``ecppll``).

    Raises
    ------
    ValueError
        When ``fin_mhz`` is outside 8-400 MHz or the closest output is outside 10-400 MHz.
    """
    f32 = np.float32
    fin, fout = float(fin_mhz), float(fout_mhz)
    if not ECP5_FIN[0] <= fin <= ECP5_FIN[1]:
        raise ValueError(f"ECP5 PLL input {fin:g} MHz is outside {ECP5_FIN[0]:g}-"
                         f"{ECP5_FIN[1]:g} MHz")
    if not ECP5_FOUT[0] <= fout <= ECP5_FOUT[1]:
        raise ValueError(f"ECP5 PLL output {fout:g} MHz is not reachable: the EHXPLLL makes "
                         f"{ECP5_FOUT[0]:g}-{ECP5_FOUT[1]:g} MHz")
    fin32, fout32 = f32(fin), f32(fout)
    fb = np.arange(1, 81, dtype=np.float32)[:, None]
    od = np.arange(1, 129, dtype=np.float32)[None, :]
    best = None  # (error, |fvco - 600|, order, input_div, fb_div, out_div, fout, fvco)
    with np.errstate(over="ignore"):
        for input_div in range(1, 129):
            fpfd = f32(fin32 / f32(input_div))
            if fpfd < f32(ECP5_PFD[0]) or fpfd > f32(ECP5_PFD[1]):
                continue
            fvco = (fpfd * fb) * od  # float32, evaluated left to right as in ecppll
            ok = (fvco >= f32(ECP5_VCO[0])) & (fvco <= f32(ECP5_VCO[1]))
            if not ok.any():
                continue
            f = fvco / od
            err = np.abs(f - fout32)
            dist = np.abs(fvco - f32(600))
            err = np.where(ok, err, np.inf)
            e = err.min()
            if best is not None and e > best[0]:
                continue
            cand = np.argwhere(err == e)  # row-major: the order ecppll visits them
            i, j = min(cand, key=lambda ij: (dist[ij[0], ij[1]], ij[0], ij[1]))
            key = (e, dist[i, j])
            if best is None or key[0] < best[0] or (key[0] == best[0] and key[1] < best[1]):
                best = (e, dist[i, j], input_div, int(i) + 1, int(j) + 1, f[i, j], fvco[i, j],
                        fpfd)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {fout:g} MHz from {fin:g} MHz")
    _, _, input_div, fb_div, out_div, f, vco, fpfd = best
    if not ECP5_FOUT[0] <= float(f) <= ECP5_FOUT[1]:
        raise ValueError(f"ECP5 PLL: the closest output to {fout:g} MHz, {float(f):g} MHz, is "
                         f"outside {ECP5_FOUT[0]:g}-{ECP5_FOUT[1]:g} MHz")
    # ecppll: float ns_phase = 1/(fout*1e6)*0.5; int cphase = ns_phase * (fvco*1e6)
    ns_phase = float(f32(1.0 / (float(f) * 1e6) * 0.5))
    cphase = math.trunc(ns_phase * (float(vco) * 1e6))
    return Ecp5Pll(fin_mhz=fin, clki_div=input_div, clkfb_div=fb_div, clkop_div=out_div,
                   clkop_cphase=cphase, fout_mhz=float(f), fvco=float(vco), fpfd=float(fpfd))


# --- Amaranth -----------------------------------------------------------------------------

def pll_domain(m: Module, pll: Ice40Pll | Ecp5Pll, clk_in, *, reset: Value | None = None,
               domain: str = "sync", pad: bool = False) -> Signal:
    """Instantiate the PLL in ``m`` and create clock domain ``domain`` on its output.

    Parameters
    ----------
    clk_in:
        The oscillator: a 1-bit signal, or with ``pad=True`` (iCE40 only) the oscillator
        pin's I/O value (``platform.request(..., dir="-").io``), which the PLL then takes
        straight from the pad (``SB_PLL40_PAD``, for the pins with a PLL beside them).
    reset:
        Optional active-high reset (a button); synchronised, as is the lock.
    pad:
        ``SB_PLL40_PAD`` instead of ``SB_PLL40_CORE`` (iCE40).

    Returns
    -------
    The PLL's lock output.  The domain's reset is asserted asynchronously while the PLL is
    unlocked or ``reset`` is high, and released synchronously to the new clock.
    """
    cd = ClockDomain(domain)
    m.domains += cd
    locked = Signal(name=f"{domain}_pll_locked")
    if isinstance(pll, Ice40Pll):
        ports = {"i_PACKAGEPIN": clk_in} if pad else {"i_REFERENCECLK": clk_in}
        m.submodules[f"{domain}_pll"] = Instance(
            "SB_PLL40_PAD" if pad else "SB_PLL40_CORE", **pll.parameters,
            p_PLLOUT_SELECT="GENCLK", **ports,
            i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=ClockSignal(domain), o_LOCK=locked)
    elif isinstance(pll, Ecp5Pll):
        if pad:
            raise ValueError("pad=True is for the iCE40 SB_PLL40_PAD")
        m.submodules[f"{domain}_pll"] = Instance(
            "EHXPLLL", **pll.parameters,
            i_RST=0, i_STDBY=0, i_CLKI=clk_in, o_CLKOP=ClockSignal(domain),
            i_CLKFB=ClockSignal(domain), i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
            i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
    else:
        raise TypeError(f"not a PLL setting: {pll!r}")
    arst = ~locked if reset is None else (~locked | reset)
    m.submodules[f"{domain}_reset_sync"] = ResetSynchronizer(arst, domain=domain)
    return locked
