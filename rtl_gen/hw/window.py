"""The sliding window (line buffer) and the pooling reducer on a feature-map stream.

::

    i: HWC codes, one a transfer ──► line buffer: D rows of W*C codes in block RAM,
           (writer: raster order)        words of P codes (P consecutive channels)
                                         │ one word a cycle, read in window order
                                         ▼
                     o: for each output pixel (y, x), row by row, its window of
                        K = kh*kw*C codes in (ky, kx, c) order, P codes a transfer,
                        code 0 for padding

A feature map streams in channel-last (HWC) order, one code a transfer, image after image
(:mod:`rtl_gen.design.conv`).  :class:`WindowUnit` keeps the last ``D`` input rows in one
memory (:class:`~amaranth.lib.memory.Memory`, one write port and one read port, so Yosys
maps it to block RAM), row ``y`` of an image in slot ``y mod D``; ``D = min(H, kh + sh)``
by default: the ``kh`` rows a window row reads and the ``sh`` rows of the next window row,
which the writer fills while the reader still reads the current ones (``D = kh`` is the
least that works, the classic ``kh - 1`` lines plus the one being written).  The reader
walks the output pixels and, for each, the ``kh*kw*C`` taps of its window, one a cycle
(implicit im2col): the window the layer engine's input banks take as one input vector.

With ``per_cycle = P > 1`` (``P`` divides ``C``) the memory holds words of ``P`` codes,
``P`` consecutive channels of one pixel: the writer gathers ``P`` input codes in a register
and writes the word with the last of them (so a pixel is complete in the same cycle as with
``P = 1``), and the reader issues one word a cycle, ``kh*kw*C/P`` a window -- the layer
engine's input banks take ``P`` codes a transfer into adjacent lanes
(:func:`~rtl_gen.hw.kit.input_banks`), so the window takes ``P`` times fewer cycles.
A tap below is then a word of ``P`` codes.

Rules (every one a comparison of counters, no division):

* the reader starts a tap when the last real input pixel of its window is complete (the
  writer is past it in raster order, or has finished the image); padded taps (outside the
  map) read as code 0, the padding of :mod:`rtl_gen.design.conv`;
* the writer takes input row ``y`` only while ``y < lo + D``, where ``lo`` is the top real
  row of the current window row (so it never overwrites a row a window still needs), and
  takes the next image only after the reader has emitted every window of this one (then
  ``lo`` no longer binds: trailing rows that no window reads are written and dropped);
* the output register is the memory's read register, held while the consumer is not
  ready (valid/ready back-pressure on both sides); a padded word reads as ``P`` zeros.

For the clock, no comparator lies between a counter and the reader's issue or the writer's
ready: the window's last real row and column, ``lo + D`` and the writer's "row below
``lo + D``" are registers kept with the counters they derive from, and each reader counter
has a registered "at its last value" flag.

:class:`PoolReducer` turns groups of ``taps`` codes per channel, in ``(tap, channel)``
order, into one code per channel: the largest (max pooling) or the mean rounded to nearest,
ties up, ``floor((s + n//2) / n)``, as the golden model rounds it
(:func:`~rtl_gen.design.conv.round_mean`), computed as ``(v * m) >> t`` with the constants
of :func:`~rtl_gen.design.conv.avg_divider` (signed codes offset by ``2**(bits-1)`` first).
A window unit in front of it pools windows; fed the stream itself with ``taps = H*W`` it
is global average pooling.
"""

from __future__ import annotations

import dataclasses

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design.conv import avg_divider, check_window
from .kit import Planned

__all__ = ["PoolReducer", "ReducerPlan", "WindowPlan", "WindowUnit", "code_shape"]


def code_shape(bits: int, is_signed: bool):
    """The shape of one activation code."""
    return signed(bits) if is_signed else unsigned(bits)


def _check_code(bits, is_signed) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 32:
        raise ValueError(f"code bits must be an integer in 1..32, not {bits!r}")
    if not isinstance(is_signed, bool):
        raise TypeError(f"signed must be True or False, not {is_signed!r}")


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """A validated window unit.

    Members
    -------
    in_shape, kernel, stride, padding:
        ``(H, W, C)`` and ``(vertical, horizontal)`` pairs.
    out_shape:
        ``(Ho, Wo)``, output pixels.
    bits, signed:
        The code.
    lines:
        ``D``, input rows the memory holds.
    per_cycle:
        ``P``, codes per output transfer and per memory word (a divisor of ``C``).
    """

    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    out_shape: tuple[int, int]
    bits: int
    signed: bool
    lines: int
    per_cycle: int = 1

    @property
    def taps(self) -> int:
        """``K = kh*kw*C``, codes per window."""
        return self.kernel[0] * self.kernel[1] * self.in_shape[2]

    @property
    def windows(self) -> int:
        """``Ho*Wo``, windows per image."""
        return self.out_shape[0] * self.out_shape[1]

    @property
    def depth(self) -> int:
        """Codes the memory holds: ``D*W*C``."""
        return self.lines * self.in_shape[1] * self.in_shape[2]

    @property
    def words(self) -> int:
        """Words of the memory: ``D*W*C / P``."""
        return self.depth // self.per_cycle

    @property
    def word_bits(self) -> int:
        """Bits of a memory word: ``P * bits``."""
        return self.per_cycle * self.bits

    @property
    def transfers(self) -> int:
        """Output transfers per window: ``K / P``."""
        return self.taps // self.per_cycle


def plan_window(in_shape, kernel, stride=1, padding=0, *, bits: int, signed: bool,
                lines: int | None = None, per_cycle: int = 1) -> WindowPlan:
    """Validate a window unit (see :class:`WindowUnit`)."""
    from ..errors import SpecError

    _check_code(bits, signed)
    try:
        in_shape, kernel, stride, padding, out = check_window(in_shape, kernel, stride,
                                                              padding)
    except SpecError as e:
        raise ValueError(f"window {e.field}: {e.message}") from None
    h = in_shape[0]
    if lines is None:
        lines = min(h, kernel[0] + stride[0])
    if isinstance(lines, bool) or not isinstance(lines, int) or not \
            min(kernel[0], h) <= lines <= max(h, kernel[0] + stride[0]):
        raise ValueError(f"lines must be an integer in {min(kernel[0], h)}.."
                         f"{max(h, kernel[0] + stride[0])} (the kernel's rows up to the "
                         f"map's), not {lines!r}")
    c = in_shape[2]
    if isinstance(per_cycle, bool) or not isinstance(per_cycle, int) or per_cycle < 1 \
            or c % per_cycle:
        raise ValueError(f"codes per cycle must be a divisor of the {c} input channels, not "
                         f"{per_cycle!r}")
    return WindowPlan(in_shape=in_shape, kernel=kernel, stride=stride, padding=padding,
                      out_shape=out, bits=bits, signed=signed, lines=lines,
                      per_cycle=per_cycle)


class WindowUnit(Planned):
    """The sliding-window unit; see the module docstring.

    Parameters
    ----------
    in_shape:
        ``(H, W, C)`` of the input map.
    kernel, stride, padding:
        An integer (both directions) or a ``(vertical, horizontal)`` pair; padding with code
        0, at most ``kernel - 1`` per side.
    bits, signed:
        The input code.
    lines:
        ``D``, input rows kept (``None``: ``min(H, kh + sh)``; at least ``min(kh, H)``).
    per_cycle:
        ``P``, window codes per output transfer (a divisor of ``C``; default 1).

    Members
    -------
    i : In(stream.Signature(code))
        The map in HWC order, one code a transfer, image after image.
    o : Out(stream.Signature(code)), or Out(stream.Signature(ArrayLayout(code, P)))
        Each output pixel's ``kh*kw*C`` window codes in ``(ky, kx, c)`` order, pixels in
        row-major order, image after image; ``P > 1``: ``P`` consecutive codes a transfer,
        the first in element 0.

    Raises
    ------
    ValueError, TypeError
        For a geometry or code that cannot be built (one line naming it).
    """

    plan = staticmethod(plan_window)

    @staticmethod
    def ports(plan: WindowPlan) -> dict:
        shape = code_shape(plan.bits, plan.signed)
        out = shape if plan.per_cycle == 1 else data.ArrayLayout(shape, plan.per_cycle)
        return {"i": In(stream.Signature(shape)), "o": Out(stream.Signature(out))}

    def elaborate(self, platform):
        m = Module()
        p = self._plan
        (h, w, c_codes), (kh, kw), (sh, sw), (ph, pw) = (p.in_shape, p.kernel, p.stride,
                                                         p.padding)
        ho, wo = p.out_shape
        per = p.per_cycle
        c = c_codes // per                 # words per pixel; addresses count words
        d, rc, depth = p.lines, w * c, p.words

        m.submodules.lines = mem = Memory(shape=unsigned(p.word_bits), depth=depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        def counter(n, name):
            return Signal(range(max(n, 2)), name=name)

        # -- the writer: raster order, row y in slot y mod D --------------------------------
        w_img, r_img = Signal(), Signal()          # image parity of writer and reader
        wy, wx, wc = counter(h, "wy"), counter(w, "wx"), counter(c, "wc")   # wc: words
        waddr = counter(depth, "waddr")
        r_done = Signal()                          # every window of the image emitted

        # the reader's top window row and last needed pixel (signed: padding above/left)
        iy0 = Signal(range(-ph - 1, h + kh + sh + 1), init=-ph, name="iy0")
        ix0 = Signal(range(-pw - 1, w + kw + sw + 1), init=-pw, name="ix0")
        # registered bounds, kept with iy0 / ix0 (so no adder lies between the counters and
        # the reader's issue or the writer's ready): limit = max(iy0, 0) + D, the first row
        # the writer may not take yet; y_last, x_last: the window's last real row and column
        limit = Signal(range(h + d + sh + 1), init=d, name="limit")
        y_last_init, x_last_init = min(h - 1, kh - 1 - ph), min(w - 1, kw - 1 - pw)
        y_last = Signal(range(-1, h), init=y_last_init, name="y_last")
        x_last = Signal(range(-1, w), init=x_last_init, name="x_last")
        # room = wy < limit, a register: the writer's ready (and so the producer's) waits on
        # no comparator.  Its next value compares each value wy may take (kept, one on, 0)
        # with each value limit may take (kept, the next window row's, the first row's),
        # the writer's and the reader's choices last (limit >= D >= 1 > 0)
        wy_move = Signal(2)                # 0: kept, 1: one on, 2: back to 0
        limit_row = Signal.like(limit)     # max(iy0 + sh, 0) + D: the next window row's
        limit_move = Signal(2)             # 0: kept, 1: the next window row's, 2: the first
        room = Signal(init=1, name="room")
        top = iy0 + sh
        m.d.comb += [wy_move.eq(0), limit_move.eq(0),
                     limit_row.eq(Mux(top < 0, 0, top) + d)]

        def below(bound):
            return Mux(wy_move[0], wy + 1 < bound, Mux(wy_move[1], 1, wy < bound))

        m.d.sync += [wy.eq(Mux(wy_move[0], wy + 1, Mux(wy_move[1], 0, wy))),
                     limit.eq(Mux(limit_move[0], limit_row, Mux(limit_move[1], d, limit))),
                     room.eq(Mux(limit_move[0], below(limit_row),
                                 Mux(limit_move[1], below(d), below(limit))))]
        write_ok = Signal()
        same = w_img == r_img
        if d >= h:
            m.d.comb += write_ok.eq(same)
        else:
            m.d.comb += write_ok.eq(same & (r_done | room))
        take = Signal()
        m.d.comb += [self.i.ready.eq(write_ok), take.eq(self.i.valid & write_ok),
                     wr.addr.eq(waddr)]
        if per == 1:
            word_done = take
            m.d.comb += wr.data.eq(self.i.payload)
        else:
            # the word's first P - 1 codes, the oldest in the low bits; the last one completes it
            held = Signal((per - 1) * p.bits, name="held", reset_less=True)
            sub = counter(per, "sub")
            word_done = take & (sub == per - 1)
            m.d.comb += wr.data.eq(Cat(held, self.i.payload))
            with m.If(take):
                m.d.sync += [held.eq(Cat(held[p.bits:], self.i.payload)),
                             sub.eq(Mux(sub == per - 1, 0, sub + 1))]
        m.d.comb += wr.en.eq(word_done)
        with m.If(word_done):
            m.d.sync += waddr.eq(Mux(waddr == depth - 1, 0, waddr + 1))
            with m.If(wc == c - 1):
                m.d.sync += wc.eq(0)
                with m.If(wx == w - 1):
                    m.d.sync += wx.eq(0)
                    with m.If(wy == h - 1):
                        m.d.sync += [w_img.eq(~w_img), waddr.eq(0)]
                        m.d.comb += wy_move.eq(2)
                    with m.Else():
                        m.d.comb += wy_move.eq(1)
                with m.Else():
                    m.d.sync += wx.eq(wx + 1)
            with m.Else():
                m.d.sync += wc.eq(wc + 1)

        # -- the reader: output pixels, then the window's taps ------------------------------
        oy, ox = counter(ho, "oy"), counter(wo, "ox")
        ky, kx, kc = counter(kh, "ky"), counter(kw, "kx"), counter(c, "kc")
        iy = Signal(range(-ph - 1, h + kh + sh + 1), init=-ph, name="iy")
        ix = Signal(range(-pw - 1, w + kw + sw + 1), init=-pw, name="ix")
        row0_init = ((-ph) % d) * rc
        row0 = Signal(range(depth), init=row0_init, name="row0")   # slot of iy0, * W*C
        row = Signal(range(depth), init=row0_init, name="row")     # slot of iy, * W*C
        col_range = range(-pw * c - 1, (w + kw + sw) * c + 1)
        col0 = Signal(col_range, init=-pw * c, name="col0")        # ix0 * C
        col = Signal(col_range, init=-pw * c, name="col")          # ix * C

        avail = ~same | (wy > y_last) | ((wy == y_last) & (wx > x_last))
        # without padding every window lies within the map
        pad = (iy < 0) | (iy >= h) | (ix < 0) | (ix >= w) if ph or pw else Const(0)
        issue = Signal()
        m.d.comb += issue.eq(~r_done & avail)

        valid_d, pad_d = Signal(), Signal()
        adv = ~valid_d | self.o.ready
        m.d.comb += [rd.addr.eq(row + col + kc), rd.en.eq(adv),
                     self.o.valid.eq(valid_d),
                     Value.cast(self.o.payload).eq(Mux(pad_d, 0, rd.data))]

        def slot_add(base, rows):
            step = (rows % d) * rc
            return Mux(base + step >= depth, base + step - depth, base + step)

        # each reader counter's "at its last value" flag, registered with it, so that the
        # issue reaches the counters' enables through no comparator
        def last_flag(n, name):
            return Signal(init=int(n == 1), name=f"{name}_last")

        kc_last, kx_last, ky_last = last_flag(c, "kc"), last_flag(kw, "kx"), last_flag(kh, "ky")
        ox_last, oy_last = last_flag(wo, "ox"), last_flag(ho, "oy")

        def restart(cnt, flag, n):
            """The counter back to 0."""
            return [cnt.eq(0), flag.eq(int(n == 1))]

        def bump(cnt, flag, n):
            """The counter (not at its last value) one on."""
            return [cnt.eq(cnt + 1), flag.eq(cnt == n - 2)]

        first_image = [*restart(oy, oy_last, ho), iy0.eq(-ph), row0.eq(row0_init),
                       iy.eq(-ph), row.eq(row0_init), y_last.eq(y_last_init)]
        with m.If(r_done & ~same):       # the writer has finished the image: next one
            m.d.sync += [r_done.eq(0), r_img.eq(~r_img)]
        with m.If(adv):
            m.d.sync += [valid_d.eq(issue), pad_d.eq(pad)]
        with m.If(adv & issue):
            with m.If(kc_last):
                m.d.sync += restart(kc, kc_last, c)
                with m.If(kx_last):
                    m.d.sync += restart(kx, kx_last, kw)
                    with m.If(ky_last):
                        m.d.sync += restart(ky, ky_last, kh)
                        with m.If(ox_last):      # the window row is done
                            m.d.sync += [*restart(ox, ox_last, wo), ix0.eq(-pw), ix.eq(-pw),
                                         col0.eq(-pw * c), col.eq(-pw * c),
                                         x_last.eq(x_last_init)]
                            with m.If(oy_last):  # the image is done
                                m.d.sync += first_image
                                m.d.comb += limit_move.eq(2)
                                with m.If(same):
                                    m.d.sync += r_done.eq(1)
                                with m.Else():
                                    m.d.sync += r_img.eq(~r_img)
                            with m.Else():
                                nxt = slot_add(row0, sh)
                                m.d.sync += y_last.eq(Mux(y_last + sh > h - 1, h - 1,
                                                          y_last + sh))
                                m.d.comb += limit_move.eq(1)
                                m.d.sync += [*bump(oy, oy_last, ho), iy0.eq(iy0 + sh),
                                             iy.eq(iy0 + sh), row0.eq(nxt), row.eq(nxt)]
                        with m.Else():
                            m.d.sync += x_last.eq(Mux(x_last + sw > w - 1, w - 1, x_last + sw))
                            m.d.sync += [*bump(ox, ox_last, wo), ix0.eq(ix0 + sw),
                                         ix.eq(ix0 + sw), col0.eq(col0 + sw * c),
                                         col.eq(col0 + sw * c), iy.eq(iy0), row.eq(row0)]
                    with m.Else():
                        m.d.sync += [*bump(ky, ky_last, kh), iy.eq(iy + 1),
                                     row.eq(slot_add(row, 1)), ix.eq(ix0), col.eq(col0)]
                with m.Else():
                    m.d.sync += [*bump(kx, kx_last, kw), ix.eq(ix + 1), col.eq(col + c)]
            with m.Else():
                m.d.sync += bump(kc, kc_last, c)
        return m


# -- pooling -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReducerPlan:
    """A validated pooling reducer: ``how`` (``"max"`` or ``"avg"``), ``taps`` codes per
    channel per result, ``channels``, the code (``bits``, ``signed``), and for ``"avg"``
    the divider ``(mult, shift)`` and ``offset`` (``2**(bits-1)`` for signed codes)."""

    how: str
    taps: int
    channels: int
    bits: int
    signed: bool
    mult: int = 1
    shift: int = 0
    offset: int = 0

    @property
    def sum_bits(self) -> int:
        """Bits of a signed sum of ``taps`` codes."""
        return self.bits + max(self.taps - 1, 1).bit_length() + 1


def plan_reducer(how: str, *, taps: int, channels: int, bits: int,
                 signed: bool) -> ReducerPlan:
    """Validate a pooling reducer (see :class:`PoolReducer`)."""
    if how not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', not {how!r}")
    _check_code(bits, signed)
    for name, v in (("taps", taps), ("channels", channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    if how == "max":
        return ReducerPlan(how, taps, channels, bits, signed)
    offset = (1 << (bits - 1)) if signed else 0
    v_max = taps * ((1 << bits) - 1) + taps // 2
    mult, shift = avg_divider(taps, v_max)
    return ReducerPlan(how, taps, channels, bits, signed, mult, shift, offset)


class PoolReducer(Planned):
    """Groups of ``taps`` codes per channel, in ``(tap, channel)`` order, to one code per
    channel: the largest, or the mean rounded to nearest, ties up (module docstring).

    Parameters
    ----------
    how:
        ``"max"`` or ``"avg"``.
    taps, channels:
        Codes per result and channels per group.
    bits, signed:
        The code (the output's too).

    Members
    -------
    i : In(stream.Signature(code))
    o : Out(stream.Signature(code))
        Channel ``c``'s result leaves a cycle after the group's last tap of ``c`` (one
        register, held while ``o`` is not ready; ``i`` waits meanwhile).
    """

    plan = staticmethod(plan_reducer)

    @staticmethod
    def ports(plan: ReducerPlan) -> dict:
        shape = code_shape(plan.bits, plan.signed)
        return {"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))}

    def elaborate(self, platform):
        m = Module()
        p = self._plan
        shape = code_shape(p.bits, p.signed)
        acc_shape = shape if p.how == "max" else signed(p.sum_bits)
        # the channels' accumulators in a ring that turns one place a code: the current
        # channel's is always accs[0] (no multiplexer over the channels), the new value
        # enters at the back
        accs = [Signal(acc_shape, name=f"acc{ch}", reset_less=True)
                for ch in range(p.channels)]
        tap = Signal(range(max(p.taps, 2)))
        ch = Signal(range(max(p.channels, 2)))
        x = self.i.payload
        acc = accs[0]
        new = Signal(acc_shape)
        if p.how == "max":
            m.d.comb += new.eq(Mux((tap == 0) | (x > acc), x, acc))
        else:
            m.d.comb += new.eq(Mux(tap == 0, x, acc + x))

        out_valid = Signal()
        out_data = Signal(shape, reset_less=True)
        take = Signal()
        m.d.comb += [self.i.ready.eq(~out_valid | self.o.ready),
                     take.eq(self.i.valid & self.i.ready),
                     self.o.valid.eq(out_valid), self.o.payload.eq(out_data)]
        with m.If(self.o.ready):
            m.d.sync += out_valid.eq(0)
        last = tap == p.taps - 1
        if p.how == "max":
            result = new
        else:
            # v = s + n//2 (+ n * 2**(bits-1) for signed codes) >= 0; (v * m) >> t = v // n
            v = Signal(range(p.taps * ((1 << p.bits) - 1) + p.taps // 2 + 1), name="v")
            m.d.comb += v.eq(new + (p.taps // 2 + p.taps * p.offset))
            q = Signal(range(1 << p.bits), name="q")
            m.d.comb += q.eq((v * p.mult) >> p.shift)
            result = Signal(shape, name="mean")
            m.d.comb += result.eq(q - p.offset)
        with m.If(take):
            m.d.sync += [a.eq(b) for a, b in zip(accs, accs[1:] + [new], strict=True)]
            with m.If(last):
                m.d.sync += [out_valid.eq(1), out_data.eq(result)]
            with m.If(ch == p.channels - 1):
                m.d.sync += [ch.eq(0), tap.eq(Mux(last, 0, tap + 1))]
            with m.Else():
                m.d.sync += ch.eq(ch + 1)
        return m
