"""ECP5 netlist improvements that Yosys's ``synth_ecp5`` does not make.

The block RAM's output register
-------------------------------
Yosys maps every memory read port onto a ``DP16KD`` port in its ``NOREG`` mode, whose data
leaves the block 5.6 ns after the clock edge (nextpnr's timing data for the LFE5U-85F, speed
grade 6): on its own most of a 150 MHz cycle.  The block's output register (``REGMODE``
``OUTREG``) takes the data a cycle later but hands it on at once.  A design that registers
the read data right away (the unrolled engine's requantizer tables: the code is registered
before the next layer) has that register in the fabric, which Yosys leaves there.

:func:`absorb_bram_output_registers` moves such registers into the block: a port whose every
used data bit drives exactly one flip-flop and nothing else, all of them on the port's clock
and rising edge, loading exactly when the port reads (its ``CE``), with no set or reset and
a reset-to-zero initial value, becomes ``OUTREG`` with its ``CE`` also on ``OCE``; its data
bits then drive the flip-flops' outputs and the flip-flops go.  The result is the same
circuit: each clock edge with the enable high reads the table into the port's read latch and,
a cycle later, that value into a register, in both forms.

Public API
----------
:func:`absorb_bram_output_registers` ``(module) -> int``
    Rewrite one flattened Yosys JSON ``module`` in place; returns the flip-flops absorbed.
"""

from __future__ import annotations

__all__ = ["absorb_bram_output_registers"]

_BRAM = "DP16KD"
_FF = "TRELLIS_FF"
#: ``(clock, enable, output enable, register mode parameter, data-out prefix)`` per port.
_PORTS = (("CLKA", "CEA", "OCEA", "REGMODE_A", "DOA"), ("CLKB", "CEB", "OCEB", "REGMODE_B",
                                                        "DOB"))


def _readers(cells: dict) -> dict:
    """``{bit: [(cell name, port), ...]}`` of every input port in ``cells``."""
    readers: dict = {}
    for name, cell in cells.items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port, "input") == "output":
                continue
            for b in bits:
                if isinstance(b, int):
                    readers.setdefault(b, []).append((name, port))
    return readers


def _plain_ff(cell: dict, clock) -> bool:
    """A rising-edge flip-flop on ``clock`` with no set or reset that starts at zero (its
    enable: :func:`_same_enable`)."""
    p, c = cell["parameters"], cell["connections"]
    return (p.get("CLKMUX", "CLK") == "CLK" and c.get("CLK") == clock
            and p.get("LSRMUX", "LSR") == "LSR" and c.get("LSR", ["0"]) == ["0"]
            and p.get("REGSET", "RESET") == "RESET" and p.get("GSR", "DISABLED") == "DISABLED")


def _lut_value(cell: dict, x, v: int):
    """A ``LUT4``'s output with input net ``x`` at ``v`` and its other inputs constant;
    ``None`` when another input is a net."""
    index = 0
    for k, pin in enumerate("ABCD"):
        bit = cell["connections"].get(pin, ["0"])[0]
        if bit == x:
            index |= v << k
        elif bit == "1":
            index |= 1 << k
        elif bit not in ("0", "x"):
            return None
    init = cell["parameters"]["INIT"]
    init = int(init, 2) if set(init) <= {"0", "1"} else int(init)
    return (init >> index) & 1


def _is_inverter(cell: dict, x) -> bool:
    """Whether ``cell`` is a ``LUT4`` giving ``~x`` (its other inputs constant)."""
    return cell["type"] == "LUT4" and \
        x in (cell["connections"].get(p, [None])[0] for p in "ABCD") and \
        _lut_value(cell, x, 0) == 1 and _lut_value(cell, x, 1) == 0


def _same_enable(ff: dict, enable, drivers: dict) -> bool:
    """Whether flip-flop ``ff`` loads exactly when the port's enable net ``enable`` is
    high: its ``CE`` is that net, or (``CEMUX`` ``INV``) the net an inverter makes
    ``enable`` from, or it always loads and so does the port."""
    mux = ff["parameters"].get("CEMUX", "CE").strip()
    ce = ff["connections"].get("CE", ["0"])[0]
    if mux == "1":
        return enable == "1"
    if mux == "CE":
        return ce == enable
    if mux != "INV" or not isinstance(enable, int):
        return False
    driver = drivers.get(enable)
    return driver is not None and _is_inverter(driver, ce)


def absorb_bram_output_registers(module: dict) -> int:
    """Move the flip-flops that register a ``DP16KD`` port's read data into the port's
    output register (see the module docstring); ``module`` is one module of a Yosys JSON
    netlist, changed in place.  Returns the number of flip-flops absorbed."""
    cells = module.get("cells", {})
    readers = _readers(cells)
    drivers = {bits[0]: cell for cell in cells.values()
               for port, bits in cell["connections"].items()
               if cell.get("port_directions", {}).get(port) == "output" and bits}
    ports_of_top = {b for p in module.get("ports", {}).values()
                    if p.get("direction") != "input" for b in p["bits"] if isinstance(b, int)}
    absorbed = 0
    for cell in list(cells.values()):
        if cell["type"] != _BRAM:
            continue
        conn, params = cell["connections"], cell["parameters"]
        for clk, ce, oce, regmode, prefix in _PORTS:
            if params.get(regmode, "NOREG") != "NOREG" or conn.get(oce) != ["1"]:
                continue
            enable = conn.get(ce, ["1"])[0]
            pairs = []          # (data-out pin, flip-flop name)
            for pin, bits in conn.items():
                if not pin.startswith(prefix):
                    continue
                bit = bits[0]
                users = readers.get(bit, []) if isinstance(bit, int) else []
                if not users and bit not in ports_of_top:
                    continue
                ff = cells[users[0][0]] if len(users) == 1 else None
                if ff is None or bit in ports_of_top or users[0][1] != "DI" or \
                        ff["type"] != _FF or not _plain_ff(ff, conn.get(clk)) or \
                        not _same_enable(ff, enable, drivers):
                    pairs = []
                    break
                pairs.append((pin, users[0][0]))
            if not pairs:
                continue
            params[regmode] = "OUTREG"
            conn[oce] = [enable]
            for pin, ff_name in pairs:
                conn[pin] = list(cells[ff_name]["connections"]["Q"])
                del cells[ff_name]
                absorbed += 1
    return absorbed
