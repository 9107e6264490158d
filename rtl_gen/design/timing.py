"""The cycle model of every layer engine and of a chain of them (pure Python, no Amaranth).

Every layer engine (integer systolic array, term-revealing array, float lanes) is the same
machine: a batch of ``R`` input vectors waits in one of two input banks; the sequencer takes
it, issues ``tiles = ceil(N / C)`` tiles of ``C`` output channels, one every ``period``
cycles, each tile ``issue_cycles`` cycles of steps; the datapath completes a tile's results
``array_latency`` cycles after its last step, and the drain writes them to the output FIFO
one a cycle, ``drain_stages`` registers later.  :class:`LayerTiming` holds the numbers that
differ between engines; the hardware's ``cycles`` output equals :attr:`LayerTiming.batch_cycles`
when nothing downstream stalls (a test holds every engine to it).

The four engines as models (:meth:`LayerTiming.systolic`, :meth:`~LayerTiming.term_revealing`,
:meth:`~LayerTiming.bit_serial`, :meth:`~LayerTiming.float_lanes`):

=================  ============  ============  ==============  =========  ======
engine             lanes         slots         array latency   drain      pickup
=================  ============  ============  ==============  =========  ======
integer array      ``L``         1             ``R + C + PE``  3 / 2      1
broadcast (R = 1)  ``L``         1             ``2 + PE``      3 / 2      1
term revealing     group ``g``   ``min(k,T)``  3               3 / 2      1
TR, group a cycle  group ``g``   ``⌈n/P⌉``     3 + ⌈lg(P+1)⌉  3 / 2      1
bit-serial         ``L``         ``Mw * Ma``   4               3 / 2      1
float lanes        1             1             1               3 / 2      0
=================  ============  ============  ==============  =========  ======

(drain: hidden layer / logits for the integer engines, one more when the array has more
than 16 results (:func:`select_stages`); with / without a scale for float.)
The group-per-cycle term-revealing PE (:meth:`LayerTiming.term_revealing_group`) adds ``P``
weight terms a cycle: a group's ``n`` terms (``min(k, T)`` under TR, ``T`` conventional)
take ``⌈n / P⌉`` cycles (at least 1), one cycle when ``P >= n``.
The integer drain reads the array's result registers, which the next tile's results
overwrite, so its period has one cycle of margin (``drain_gap`` 1); the float lanes copy
their sums into a shift register (``drain_gap`` 0).  ``pickup`` is the idle cycle the
integer sequencer spends taking the next bank; the float sequencer takes it in the cycle
the last tile ends.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["LayerTiming", "drain_stages", "network_interval", "select_stages",
           "throttled_layers", "tr_group_latency"]

#: Results an integer drain selects from in one cycle; an array with more first registers
#: one 4-way select per group of 4 results (:func:`select_stages`), so neither stage is a
#: multiplexer deeper than 16 ways (the 32-way select was the UP5K's critical path).
SELECT_DIRECT = 16
#: Results per group of the first select stage.
SELECT_GROUP = 4


def select_stages(results: int) -> int:
    """Registered select stages before the drain's read register: 1 when the array has more
    than :data:`SELECT_DIRECT` results, else 0."""
    return int(results > SELECT_DIRECT)


def drain_stages(results: int, requantize: bool) -> int:
    """Registers from an integer array's result to the output FIFO: the select stages, the
    read register, the bias or requantization product and, for a hidden layer
    (``requantize``), the rounding, shift and clamp."""
    return select_stages(results) + (3 if requantize else 2)


@dataclasses.dataclass(frozen=True)
class LayerTiming:
    """The cycle model of one layer engine (see the module docstring).

    Parameters
    ----------
    k, n:
        Inputs and outputs of the layer.
    rows, cols, lanes:
        ``R`` (batch), ``C`` (channels per tile) and ``L`` (inputs per step).
    array_latency:
        From the last step entering the datapath to every result of the tile captured.
    drain_stages:
        Registers from a result to the output FIFO.
    slots:
        Cycles per step (the term-revealing array's weight-term slots per group), at least 1.
    drain_gap:
        Cycles of margin between the drain's last read of a tile and the next tile's results
        landing.
    pickup:
        Idle cycles between a batch's last tile and the next batch's first.
    in_per_beat:
        Activations the input stream carries per transfer (the network's input port of
        ``P`` codes a cycle, for its first layer; the previous layer's ``drain_width`` for
        the others).
    drain_width:
        Results the drain writes a cycle (``D``, one output transfer; dividing ``R*C``):
        a tile drains in ``R*C/D`` cycles.
    """

    k: int
    n: int
    rows: int
    cols: int
    lanes: int
    array_latency: int
    drain_stages: int
    slots: int = 1
    drain_gap: int = 1
    pickup: int = 1
    in_per_beat: int = 1
    drain_width: int = 1

    @classmethod
    def systolic(cls, *, k: int, n: int, rows: int, cols: int, lanes: int, pe_latency: int,
                 requantize: bool, broadcast: bool = False,
                 drain_width: int = 1) -> LayerTiming:
        """An integer layer on an output-stationary ``R x C`` systolic array: results
        complete ``R + C + pe_latency`` cycles after the last step (the skew and the
        systolic chains ``R + C - 2``, the PE's input register and latency, the result
        capture), or ``2 + pe_latency`` when the array broadcasts its operands
        (``broadcast``: no skew); the drain adds the bias and, for a hidden layer
        (``requantize``), the requantization product and the rounding, shift and clamp
        (``drain_width`` results a cycle, each through a select over ``R*C/D``)."""
        skew = 0 if broadcast else rows + cols - 2
        return cls(k=k, n=n, rows=rows, cols=cols, lanes=lanes,
                   array_latency=skew + 2 + pe_latency,
                   drain_stages=drain_stages(rows * cols // drain_width, requantize),
                   drain_width=drain_width)

    @classmethod
    def term_revealing(cls, *, k: int, n: int, rows: int, cols: int, group: int, slots: int,
                       latency: int, requantize: bool, drain_width: int = 1) -> LayerTiming:
        """A term-revealing layer: a step is one group of ``group`` inputs taking ``slots``
        cycles; the array broadcasts its operands (no skew), so its ``latency`` is fixed."""
        return cls(k=k, n=n, rows=rows, cols=cols, lanes=group, slots=slots,
                   array_latency=latency,
                   drain_stages=drain_stages(rows * cols // drain_width, requantize),
                   drain_width=drain_width)

    @classmethod
    def term_revealing_group(cls, *, k: int, n: int, rows: int, cols: int, group: int,
                             terms: int, per_cycle: int, requantize: bool,
                             drain_width: int = 1) -> LayerTiming:
        """A term-revealing layer on PEs that add ``per_cycle`` (``P``) weight terms a cycle
        in a pipelined adder tree: a step is one group whose ``terms`` weight terms take
        ``max(1, ceil(terms / P))`` cycles; the latency is :func:`tr_group_latency`."""
        return cls.term_revealing(k=k, n=n, rows=rows, cols=cols, group=group,
                                  slots=max(1, -(-terms // per_cycle)),
                                  latency=tr_group_latency(per_cycle), requantize=requantize,
                                  drain_width=drain_width)

    @classmethod
    def bit_serial(cls, *, k: int, n: int, rows: int, cols: int, lanes: int, planes: int,
                   latency: int, requantize: bool) -> LayerTiming:
        """A layer on the bit-serial array: a step is ``lanes`` inputs taking ``planes``
        cycles (``w_prec * a_prec`` bit-plane pairs, one a cycle); the array broadcasts its
        operands (no skew), so its ``latency`` is fixed."""
        return cls(k=k, n=n, rows=rows, cols=cols, lanes=lanes, slots=planes,
                   array_latency=latency,
                   drain_stages=drain_stages(rows * cols, requantize))

    @classmethod
    def float_lanes(cls, *, k: int, n: int, lanes: int, scaled: bool) -> LayerTiming:
        """A float layer on ``lanes`` output channels: one input a step, the product
        registered, the sum formed a cycle later (latency 1); the tail's read register, the
        scale product (``scaled``) and the bias sum with ReLU."""
        return cls(k=k, n=n, rows=1, cols=lanes, lanes=1, array_latency=1,
                   drain_stages=3 if scaled else 2, drain_gap=0, pickup=0)

    @property
    def k_steps(self) -> int:
        """Steps per tile: ``ceil(K / L)``."""
        return math.ceil(self.k / self.lanes)

    @property
    def tiles(self) -> int:
        """Tiles per batch: ``ceil(N / C)``."""
        return math.ceil(self.n / self.cols)

    @property
    def last_cols(self) -> int:
        """Channels of the last tile."""
        return self.n - (self.tiles - 1) * self.cols

    @property
    def issue_cycles(self) -> int:
        """Cycles a tile's steps take to issue: ``k_steps * slots``."""
        return self.k_steps * self.slots

    @property
    def drain_cycles(self) -> int:
        """Cycles the drain takes over a tile: ``R*C / drain_width`` (output transfers)."""
        return -(-self.rows * self.cols // self.drain_width)

    @property
    def period(self) -> int:
        """Cycles between tile starts: the steps, or the drain of ``R*C`` results
        (:attr:`drain_cycles`, plus ``drain_gap``) if that is longer."""
        return max(self.issue_cycles, self.drain_cycles + self.drain_gap)

    @property
    def batch_cycles(self) -> int:
        """From the cycle the sequencer takes a batch to the cycle its last result enters
        the output FIFO, both counted, when nothing downstream stalls.

        The sequencer takes the batch in cycle 0 and presents step ``s`` of tile ``t`` in
        cycle ``1 + t*period + s``; the memories answer a cycle later, so the last tile's last
        step enters the datapath in cycle ``1 + (tiles-1)*period + issue_cycles``, and its
        results are complete ``array_latency`` cycles after that.  The drain starts the next
        cycle and writes result ``j = r*C + c`` ``j // drain_width + drain_stages`` cycles
        later; the last real result is ``j = (R-1)*C + last_cols - 1``.
        """
        j_last = (self.rows - 1) * self.cols + self.last_cols - 1
        return (1 + (self.tiles - 1) * self.period + self.issue_cycles + self.array_latency
                + 1 + j_last // self.drain_width + self.drain_stages + 1)

    @property
    def interval(self) -> int:
        """Cycles between batch starts when the next batch is waiting: every tile, plus
        ``pickup``."""
        return self.tiles * self.period + self.pickup

    @property
    def steady_interval(self) -> int:
        """Cycles between batches fed :attr:`in_per_beat` activations a cycle, at most:
        :attr:`interval`, or, when loading a batch takes about as long as computing one, the
        input banks' bound.  A bank is free again when the batch in it has issued its last
        tile, and the batch after next loads into it over :attr:`load_cycles` more, so two
        batches take at least ``interval + load_cycles + 1 - pickup`` cycles."""
        return max(self.interval,
                   -(-(self.interval + self.load_cycles + 1 - self.pickup) // 2))

    @property
    def load_cycles(self) -> int:
        """Cycles the input stream takes to fill a bank: ``ceil(R*K / in_per_beat)``."""
        return -(-self.rows * self.k // self.in_per_beat)

    @property
    def in_flight(self) -> int:
        """Batches whose start time the cycle counter must hold at once: when a batch is
        taken, those taken before it and still writing (starts are at least
        :attr:`interval` apart, stalls delay starts as much as ends), and itself."""
        return max(0, self.batch_cycles - 2) // self.interval + 1

    @property
    def macs(self) -> int:
        """Products per batch."""
        return self.rows * self.k * self.n

    @property
    def products(self) -> int:
        """Products (multiply or sign operations) per input vector."""
        return self.k * self.n

    @property
    def peak(self) -> int:
        """Products per cycle of the whole datapath: ``R * C * L``."""
        return self.rows * self.cols * self.lanes

    @property
    def utilization(self) -> float:
        """Achieved over peak products per cycle in steady state (batches back to back); a
        step of ``L`` inputs takes ``slots`` cycles, so the peak is ``R*C*L / slots``."""
        return self.macs * self.slots / (self.interval * self.peak)


def tr_group_latency(per_cycle: int) -> int:
    """Cycles from a step entering the group-per-cycle TR array to the tile's results: the
    operand select and the shifted terms (two registers), an adder tree of ``P`` terms plus
    the count of negated ones (``ceil(log2(P + 1))`` registered levels), the accumulator."""
    return 3 + max(1, (per_cycle).bit_length())


def network_interval(timings, input_features: int) -> int:
    """Cycles between batches of a chained network in steady state: the slowest layer (its
    :attr:`~LayerTiming.steady_interval`), the input stream (the first layer's
    :attr:`~LayerTiming.in_per_beat` codes a cycle), or a layer's output stream
    (:attr:`~LayerTiming.drain_width` results a cycle) if that is slower."""
    rows, per_beat = timings[0].rows, timings[0].in_per_beat
    return max([t.steady_interval for t in timings] + [-(-rows * input_features // per_beat)]
               + [-(-rows * t.n // t.drain_width) for t in timings])


def throttled_layers(timings) -> tuple[int, ...]:
    """The layers a slower later layer holds back in steady state: a layer whose
    :attr:`~LayerTiming.interval` is shorter than a later layer's
    :attr:`~LayerTiming.steady_interval` fills its output FIFO and waits for credit within
    its batches, so its batches take longer than :attr:`~LayerTiming.batch_cycles` (the
    network's interval is still :func:`network_interval`)."""
    out = []
    for i, t in enumerate(timings):
        later = [u.steady_interval for u in timings[i + 1:]]
        if later and max(later) > t.interval:
            out.append(i)
    return tuple(out)
