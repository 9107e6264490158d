"""A stimulus memory in front of a design's input stream, for runs with no idle cycles.

Driving an input stream from Python costs a trip through cocotb's scheduler every cycle in
which a word is transferred (tens of microseconds, against about one microsecond for the
simulator's own cycle).  A network takes one word a cycle for most of its input phase, so
on long runs (every image of a test split) the driver, not the design, sets the pace.

:func:`testbench_verilog` wraps the design's Verilog in a module ``tb_<top>`` with the same
ports plus a stimulus memory: the testbench writes every input word to
:data:`STIMULUS_FILE` (hex, one word a line), pulses ``rtl_gen_stim_load`` (``$readmemh``),
sets ``rtl_gen_stim_count``, and raises ``rtl_gen_stim_on``.  From then on the memory drives
``i__valid``/``i__payload``, one word per transfer, ``valid`` high until every word is
taken: the same traffic as :class:`sim.scoreboard.Driver` with no gaps (a word presented in
the cycle after the previous one was taken).  ``rtl_gen_stim_first`` holds the design's
``cycles`` counter in the cycle the first word was taken (the driver's ``first_accept``).
With ``rtl_gen_stim_on`` low the wrapper passes ``i__valid``/``i__payload`` through, so one
build serves the Python driver too (gaps, stalls).

For long runs the wrapper can also make the clock (``clock_inside``): ``clk`` is then its
own register, toggled every half :data:`sim.scoreboard.PERIOD_NS` by Verilator's timing
scheduler (``--timing``, :data:`CLOCK_ARGS`), not a port that cocotb toggles through the
simulator interface.  That halves the simulator's time a cycle (a bare counter: 2.2 to 1.0
microseconds) but costs about a second more of C++ compilation a build, so it pays from
about a million cycles (:data:`LONG_RUN_CYCLES`).  Triggers on ``dut.clk`` work as before;
the testbench must not start a :class:`cocotb.clock.Clock`.

Only Verilator builds are wrapped: Icarus runs are short, and its four-state memory of
:data:`STIMULUS_DEPTH` words would cost more than it saves.
"""

from __future__ import annotations

from amaranth.hdl import Const, Value
from amaranth.lib import wiring

from sim.scoreboard import PERIOD_NS

__all__ = ["CLOCK_ARGS", "LONG_RUN_CYCLES", "STIMULUS_DEPTH", "STIMULUS_FILE", "STIMULUS_MAX_BITS",
           "testbench_verilog"]

#: Verilator options of a wrapped build: delays (the wrapper's clock) need the timing
#: scheduler, which is C++20 coroutines.
CLOCK_ARGS = ("--timing", "-CFLAGS", "-std=c++20", "-CFLAGS", "-fcoroutines")
#: Cycles from which a run's design makes its own clock (twice the break-even).
LONG_RUN_CYCLES = 2_000_000

#: Words the stimulus memory holds: every image of the MNIST test split one code a word
#: (2,000 x 784) fits.
STIMULUS_DEPTH = 1 << 21
#: The widest input word the memory takes (wider designs keep the Python driver).
STIMULUS_MAX_BITS = 128
#: The file the testbench writes into the simulator's working folder.
STIMULUS_FILE = "rtl_gen_stimulus.hex"


def _ports(component: wiring.Component) -> list[tuple[str, str, int]]:
    """``(name, direction, width)`` of the Verilog ports :func:`rtl_gen.hw.verilog.to_verilog`
    gives ``component`` (members that are constants are not ports), plus ``clk`` and
    ``rst``."""
    ports = [("clk", "input", 1), ("rst", "input", 1)]
    for path, member, value in component.signature.flatten(component):
        value = Value.cast(value)
        if isinstance(value, Const):
            continue
        direction = "input" if member.flow == wiring.In else "output"
        ports.append(("__".join(str(p) for p in path), direction, len(value)))
    return ports


def stimulus_width(component: wiring.Component) -> int | None:
    """The input word's width when the design can take the stimulus memory (an ``i``
    valid/ready stream no wider than :data:`STIMULUS_MAX_BITS` and a ``cycles`` counter),
    else ``None``."""
    return _width(_ports(component))


def _width(port_list) -> int | None:
    """:func:`stimulus_width` of the ports :func:`_ports` gives."""
    ports = {name: (direction, width) for name, direction, width in port_list}
    need = {"i__valid": "input", "i__payload": "input", "i__ready": "output",
            "cycles": "output"}
    if any(ports.get(name, ("",))[0] != d for name, d in need.items()):
        return None
    width = ports["i__payload"][1]
    return width if width <= STIMULUS_MAX_BITS else None


def testbench_verilog(component: wiring.Component, top: str, verilog: str, *,
                      clock_inside: bool = False) -> tuple[str, str]:
    """``(text, toplevel)``: ``verilog`` (module ``top``, the Verilog of ``component``) and,
    when :func:`stimulus_width` allows, the wrapper ``tb_<top>`` described above (named
    ``tbc_<top>`` when it makes the clock), which is then the top level; else ``verilog``
    and ``top`` unchanged."""
    ports = _ports(component)
    width = _width(ports)
    if width is None:
        return verilog, top
    cycles = dict((n, w) for n, _, w in ports)["cycles"]
    addr = STIMULUS_DEPTH.bit_length() - 1
    tb = f"{'tbc' if clock_inside else 'tb'}_{top}"
    inner = {"clk"} if clock_inside else set()

    def decl(direction, width, name):
        return f"  {direction} {f'[{width - 1}:0] ' if width > 1 else ''}{name};"

    names = [n for n, _, _ in ports if n not in inner] + ["rtl_gen_stim_load", "rtl_gen_stim_on",
                                        "rtl_gen_stim_count", "rtl_gen_stim_sent",
                                        "rtl_gen_stim_first"]
    lines = [f"module {tb}({', '.join(names)});"]
    lines += [decl(d, w, n) for n, d, w in ports if n not in inner]
    if clock_inside:
        lines += ["  reg clk = 1'b0;", f"  initial forever #{PERIOD_NS / 2:g} clk = ~clk;"]
    lines += [
        "  input rtl_gen_stim_load;",
        "  input rtl_gen_stim_on;",
        "  input [31:0] rtl_gen_stim_count;",
        "  output [31:0] rtl_gen_stim_sent;",
        "  reg [31:0] rtl_gen_stim_sent = 32'd0;",
        f"  output [{cycles - 1}:0] rtl_gen_stim_first;",
        f"  reg [{cycles - 1}:0] rtl_gen_stim_first = {cycles}'d0;",
        "  reg rtl_gen_stim_taken = 1'b0;",
        f"  reg [{width - 1}:0] rtl_gen_stim_mem [0:{STIMULUS_DEPTH - 1}];",
        "  wire stim_valid = rtl_gen_stim_on && rtl_gen_stim_sent < rtl_gen_stim_count;",
        f"  wire [{width - 1}:0] stim_payload = rtl_gen_stim_mem[rtl_gen_stim_sent[{addr - 1}:0]];",
        "  wire dut_valid = rtl_gen_stim_on ? stim_valid : i__valid;",
        f"  wire [{width - 1}:0] dut_payload = rtl_gen_stim_on ? stim_payload : i__payload;",
        "  always @(posedge rtl_gen_stim_load)",
        f'    $readmemh("{STIMULUS_FILE}", rtl_gen_stim_mem);',
        "  always @(posedge clk)",
        "    if (stim_valid && i__ready) begin",
        "      rtl_gen_stim_sent <= rtl_gen_stim_sent + 32'd1;",
        "      if (!rtl_gen_stim_taken) begin",
        "        rtl_gen_stim_first <= cycles;",
        "        rtl_gen_stim_taken <= 1'b1;",
        "      end",
        "    end",
    ]
    inner = {"i__valid": "dut_valid", "i__payload": "dut_payload"}
    conns = [f".{n}({inner.get(n, n)})" for n, _, _ in ports]
    lines.append(f"  {top} dut ({', '.join(conns)});")
    lines.append("endmodule")
    return verilog + "\n" + "\n".join(lines) + "\n", tb
