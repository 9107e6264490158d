"""The scoreboard of a network engine, for both network families: driver, monitors, model,
checker.

Integer networks (:class:`rtl_gen.hw.network.NetworkEngine`) and float networks
(:class:`rtl_gen.hw.float_layer.FloatNetworkEngine`) have the same ports: an input stream
``i`` (valid/ready), a logit stream ``o`` (valid/ready), a class stream ``cls`` (valid
only), a free-running ``cycles`` counter and one 32-bit ``layer_cycles`` counter per layer.
The two families differ only in what the words on the streams mean (integer codes, or fp32
bit patterns) and in which golden and cycle models say what must come out; that part is a
:class:`Model` (one small class per family) and :attr:`Expected.logit_format`.

::

    pytest side (sim.verify)                 simulator side (sim.network_tb)
    ───────────────────────                  ───────────────────────────────
    images ─► Model.inputs ─► Expected ──────► Driver ─► i ─► DUT ─► o ───► StreamMonitor ─┐
              Model.logits      (params.json)                 ├──► cls ──► PulseMonitor ──┤
              Model.classes          │                        └──► layer_cycles ──────────┤
              Model.layer_cycles     └──────────────────────────────────────► Checker ◄───┘

* :class:`Model`: the golden model's logits and classes for the images and the cycle
  model's per-layer cycles (:class:`IntegerModel`, :class:`FloatModel`), computed on the
  pytest side, where the network object is, and handed to the testbench as
  :class:`Expected` in the run's parameters.
* :class:`Driver`: one input word per transfer, held until ``valid & ready``; before each
  word an idle cycle with chance ``gap`` (repeatedly).
* :class:`StreamMonitor`: every ``o`` transfer's payload (signed integer or unsigned bit
  pattern); ``ready`` low in a cycle with chance ``stall`` (back-pressure).
  :class:`PulseMonitor`: every ``cls`` pulse.
* :class:`Checker`: bit for bit, ``==`` on integers (fp32 logits as their bit patterns);
  every logit of every image, every class, and, when the traffic had no stalls, each layer's
  cycle counter against the cycle model.  A difference raises :class:`Mismatch` naming the
  first one (image, logit, expected, got) and how many there are.
* :class:`Scoreboard`: owns the parts above for one run; one clock loop drives every part at
  the falling edge and samples every part once in ``ReadOnly``, so a clock cycle costs two
  Python crossings however many streams there are.

Timing convention: inputs are written at falling edges and sampled (``ReadOnly``) before the
next rising edge, which is the edge that transfers them.  :attr:`Observed.cycles` counts the
edges from the one that accepts the first input to the one that transfers the last logit,
both included, read from the design's own ``cycles`` counter.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from rtl_gen.errors import RtlGenError

__all__ = [
    "COUNTER_BITS",
    "Checker",
    "Driver",
    "Expected",
    "FloatModel",
    "IntegerModel",
    "Mismatch",
    "Model",
    "Observed",
    "PulseMonitor",
    "Scoreboard",
    "StreamMonitor",
    "VerifyError",
    "read_counters",
]

#: Width of each ``layer_cycles`` counter (layer 0 in the low bits of the port).
COUNTER_BITS = 32

#: Clock period of the testbench, in ns.
PERIOD_NS = 10

#: Clock cycles the scoreboard waits after the last logit for the remaining classes (each
#: image's class follows its last logit by two cycles: the argmax is pipelined).
CLASS_WAIT = 4

LOGIT_FORMATS = ("int", "fp32")


class VerifyError(RtlGenError, ValueError):
    """A network, its images or the options given for it cannot be verified as given; the
    message names what is wrong."""


class Mismatch(AssertionError):
    """The hardware's output differs from the model; the message names the first
    difference (image, logit or class, expected, got) and how many there are."""


# --------------------------------------------------------------------------- model side


@dataclasses.dataclass(frozen=True)
class Expected:
    """What one run feeds the design and must get back; JSON-able (:meth:`to_params`).

    Members
    -------
    inputs : ndarray, (images, features), int64
        Input words, image after image (integer codes, or fp32 bit patterns).
    logits : ndarray, (images, logits), int64
        The golden model's logits (integers, or fp32 bit patterns as unsigned integers).
    classes : ndarray, (images,), int64
        The golden model's classes.
    layer_cycles : tuple of int
        The cycle model's cycles per batch of each layer.
    rows : int
        Images per batch: the design takes whole batches (the last one is padded with zero
        inputs, whose logits and classes are not checked).
    order : ndarray, (logits per batch, 2), int64
        ``(image in batch, logit index)`` of each logit of a batch, in the order the design
        emits them.
    logit_format : str
        ``"int"`` (signed integers) or ``"fp32"`` (bit patterns, unsigned).
    """

    inputs: np.ndarray
    logits: np.ndarray
    classes: np.ndarray
    layer_cycles: tuple[int, ...]
    rows: int
    order: np.ndarray
    logit_format: str

    def __post_init__(self):
        if self.logit_format not in LOGIT_FORMATS:
            raise ValueError(f"logit_format must be one of {LOGIT_FORMATS}, "
                             f"not {self.logit_format!r}")
        for name in ("inputs", "logits", "classes", "order"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), np.int64))
        object.__setattr__(self, "layer_cycles", tuple(int(c) for c in self.layer_cycles))

    @property
    def images(self) -> int:
        return len(self.inputs)

    @property
    def batches(self) -> int:
        return -(-self.images // self.rows)

    @property
    def logits_per_batch(self) -> int:
        return len(self.order)

    def words(self) -> np.ndarray:
        """The input words in stream order, the last batch padded with zero images."""
        pad = self.batches * self.rows - self.images
        return np.concatenate([self.inputs,
                               np.zeros((pad, self.inputs.shape[1]), np.int64)]).reshape(-1)

    def to_params(self) -> dict:
        return {"inputs": self.inputs.tolist(), "logits": self.logits.tolist(),
                "classes": self.classes.tolist(), "layer_cycles": list(self.layer_cycles),
                "rows": self.rows, "logit_order": self.order.tolist(),
                "logit_format": self.logit_format}

    @classmethod
    def from_params(cls, p: dict) -> Expected:
        return cls(inputs=p["inputs"], logits=p["logits"], classes=p["classes"],
                   layer_cycles=p["layer_cycles"], rows=p["rows"], order=p["logit_order"],
                   logit_format=p["logit_format"])


class Model(abc.ABC):
    """The golden and cycle models of one network family, as the scoreboard needs them.

    An implementation is built from the network and its engine (for the array or lane
    configuration: rows, emission order, cycle model) and answers, for the images it is
    given, what the design must produce.  Nothing here reads the hardware description's
    behaviour: logits and classes come from ``rtl_gen.design``, cycles from the cycle model.

    Members
    -------
    logit_format : str
        ``"int"`` or ``"fp32"`` (see :class:`Expected`).
    rows : int
        Images per batch.
    order : ndarray
        Emission order of one batch's logits, ``(image in batch, logit index)``.
    layer_cycles : tuple of int
        The cycle model's cycles per batch of each layer.
    interval : int
        The cycle model's cycles between batches in steady state.
    """

    logit_format: str
    rows: int
    order: np.ndarray
    layer_cycles: tuple[int, ...]
    interval: int

    @abc.abstractmethod
    def inputs(self, x) -> np.ndarray:
        """``x`` checked and as input words, ``(images, features)`` int64.

        Raises
        ------
        VerifyError
            When ``x`` is not a 2-D integer array of the network's input width and range.
        """

    @abc.abstractmethod
    def logits(self, words: np.ndarray) -> np.ndarray:
        """The golden model's logits for the input words, ``(images, logits)`` int64."""

    @abc.abstractmethod
    def classes(self, words: np.ndarray) -> np.ndarray:
        """The golden model's classes for the input words, ``(images,)`` int64."""

    def expected(self, x) -> Expected:
        """Everything a run of the images ``x`` needs (:class:`Expected`)."""
        words = self.inputs(x)
        return Expected(inputs=words, logits=self.logits(words), classes=self.classes(words),
                        layer_cycles=self.layer_cycles, rows=self.rows, order=self.order,
                        logit_format=self.logit_format)


def _integer_array(x, what: str, features: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype.kind not in "iu":
        raise VerifyError(f"the images must be a 2-D integer array of {what}, not "
                          f"{x.dtype} {x.shape}")
    if x.shape[1] != features:
        raise VerifyError(f"the images must have {features} features, not {x.shape[1]}")
    if len(x) == 0:
        raise VerifyError("no images to verify")
    return x


def _first_outside(x: np.ndarray, lo: int, hi: int, what: str) -> None:
    bad = np.argwhere((x < lo) | (x > hi))
    if bad.size:
        i, f = bad[0]
        raise VerifyError(f"{what}; image {i}, feature {f} is {x[i, f]}")


def integer_inputs(net, x) -> np.ndarray:
    """The images ``x`` of an integer network, checked: ``(images, features)`` input codes
    within the input's range, as int64.

    Raises
    ------
    VerifyError
        Naming the first thing wrong (shape, type, or the first code out of range).
    """
    spec = net.input
    x = _integer_array(x, "input codes", spec.features)
    lo, hi = spec.range
    _first_outside(x, lo, hi, f"input codes must lie in [{lo}, {hi}] ({spec.bits}-bit "
                              f"{'signed' if spec.signed else 'unsigned'})")
    return x.astype(np.int64)


def float_inputs(net, x) -> np.ndarray:
    """The images ``x`` of a float network, checked: ``(images, in_features)`` fp32 bit
    patterns (unsigned; ``int32`` words are read as the same bits), as int64.

    Raises
    ------
    VerifyError
        Naming the first thing wrong.
    """
    x = np.asarray(x)
    if x.dtype.kind == "i" and x.dtype.itemsize == 4:
        x = x.view(np.uint32)
    x = _integer_array(x, "fp32 bit patterns", net.in_features)
    _first_outside(x, 0, 0xFFFFFFFF, "fp32 bit patterns must lie in [0, 0xFFFFFFFF]")
    return x.astype(np.int64)


class IntegerModel(Model):
    """An integer :class:`~rtl_gen.design.network.Network` on its
    :class:`~rtl_gen.hw.network.NetworkEngine`: input codes in, integer logits out, the golden
    model :func:`rtl_gen.design.golden.forward` / :func:`~rtl_gen.design.golden.predict` and
    the engine's cycle model, both under the term-revealing ``control``
    (a :class:`~rtl_gen.design.golden.TRControl`; ``None``: the bundle's own settings)."""

    logit_format = "int"

    def __init__(self, net, engine, control=None):
        from rtl_gen.design.golden import network_interval

        self.net, self.control = net, control
        timings = engine.timings_for(control)
        self.rows = engine.rows
        self.order = engine.logit_order()
        self.layer_cycles = tuple(t.batch_cycles for t in timings)
        self.interval = network_interval(timings, net.input.features)

    def inputs(self, x) -> np.ndarray:
        return integer_inputs(self.net, x)

    def logits(self, words):
        from rtl_gen.design import golden

        return np.asarray(golden.forward(self.net, words, self.control), np.int64)

    def classes(self, words):
        from rtl_gen.design import golden

        return np.asarray(golden.predict(self.net, words, self.control), np.int64)


class FloatModel(Model):
    """A :class:`~rtl_gen.design.float_network.FloatNetwork` on its
    :class:`~rtl_gen.hw.float_layer.FloatNetworkEngine`: fp32 bit patterns in and out, the
    golden model :func:`rtl_gen.design.float_network.forward` /
    :func:`~rtl_gen.design.float_network.predict` and the engine's cycle model.  One image
    is one batch; logits leave in index order."""

    logit_format = "fp32"
    rows = 1

    def __init__(self, net, engine):
        self.net = net
        self.order = np.array([(0, c) for c in range(net.classes)], np.int64)
        self.layer_cycles = tuple(t.batch_cycles for t in engine.timings)
        self.interval = engine.interval

    def inputs(self, x) -> np.ndarray:
        return float_inputs(self.net, x)

    def logits(self, words):
        from rtl_gen.design import float_network

        return float_network.forward(self.net, words.astype(np.uint32)).astype(np.int64)

    def classes(self, words):
        from rtl_gen.design import float_network

        return np.asarray(float_network.predict(self.net, words.astype(np.uint32)), np.int64)


# --------------------------------------------------------------------------- checker


def format_value(value: int, logit_format: str) -> str:
    """A logit as the Checker quotes it: the integer, or the fp32 bit pattern and its value."""
    if logit_format == "fp32":
        f = float(np.array(value & 0xFFFFFFFF, np.uint32).view(np.float32))
        return f"{value & 0xFFFFFFFF:#010x} ({f:.9g})"
    return str(value)


@dataclasses.dataclass
class Observed:
    """What one run saw: every logit in emission order, every class pulse, the layer
    counters at the end, and the measured cycles (first input accepted to last logit, both
    counted; ``None`` when no logit came)."""

    logits: list[int]
    classes: list[int]
    layer_cycles: list[int]
    cycles: int | None
    stalled: bool
    timed_out: bool = False


class Checker:
    """Compares an :class:`Observed` run with an :class:`Expected` one, bit for bit.

    Logits and classes are integers compared with ``==`` (fp32 logits as bit patterns:
    ``-0.0`` differs from ``+0.0``, and one NaN from another); each layer's cycle counter
    must equal the cycle model's unless the run had stalls (back-pressure lengthens a
    layer's batch).  Each check raises :class:`Mismatch` naming the first difference.
    """

    def __init__(self, expected: Expected):
        self.expected = expected
        #: Layers whose cycle counters are not compared (a slower later layer holds them
        #: back: :func:`rtl_gen.design.timing.throttled_layers`).
        self.unchecked_layers: frozenset[int] = frozenset()

    def arrange(self, flat) -> np.ndarray:
        """Logits in emission order → ``(image, logit)``, padding images dropped.

        Raises
        ------
        Mismatch
            When the number of logits is not a whole number of batches covering the images.
        """
        e = self.expected
        want = e.batches * e.logits_per_batch
        if len(flat) != want:
            raise Mismatch(f"{len(flat)} logits came out for {e.images} images, "
                           f"not {want}")
        chunks = np.asarray(flat, np.int64).reshape(e.batches, e.logits_per_batch)
        got = np.zeros((e.batches * e.rows, e.logits.shape[1]), np.int64)
        for b in range(e.batches):
            got[b * e.rows + e.order[:, 0], e.order[:, 1]] = chunks[b]
        if e.logit_format == "fp32":
            got &= 0xFFFFFFFF
        return got[:e.images]

    def check_logits(self, got: np.ndarray) -> None:
        want = self.expected.logits
        bad = np.argwhere(got != want)
        if bad.size:
            i, j = bad[0]
            fmt = self.expected.logit_format
            raise Mismatch(f"image {i}, logit {j}: expected {format_value(int(want[i, j]), fmt)}"
                           f", got {format_value(int(got[i, j]), fmt)} ({len(bad)} of "
                           f"{want.size} logits differ)")

    def check_classes(self, classes) -> None:
        e = self.expected
        if len(classes) < e.images:
            raise Mismatch(f"{len(classes)} classes came out for {e.images} images")
        got = np.asarray(classes[:e.images], np.int64)
        bad = np.flatnonzero(got != e.classes)
        if bad.size:
            i = bad[0]
            raise Mismatch(f"image {i}, class: expected {e.classes[i]}, got {got[i]} "
                           f"({bad.size} of {e.images} classes differ)")

    def check_layer_cycles(self, layer_cycles) -> None:
        want = list(self.expected.layer_cycles)
        got = [int(c) for c in layer_cycles]
        bad = [k for k, (a, b) in enumerate(zip(want, got, strict=True))
               if a != b and k not in self.unchecked_layers]
        if bad:
            k = bad[0]
            raise Mismatch(f"layer {k}: expected {want[k]} cycles per batch (cycle model), "
                           f"got {got[k]} (measured {got}, model {want})")

    def check(self, observed: Observed) -> np.ndarray:
        """Every check, in order: logits, classes, then (without stalls) layer cycles.

        Returns
        -------
        ndarray
            The observed logits as ``(image, logit)``.
        """
        if observed.timed_out:
            e = self.expected
            raise Mismatch(f"timed out: {len(observed.logits)} of "
                           f"{e.batches * e.logits_per_batch} logits and "
                           f"{len(observed.classes)} of {e.images} classes came out")
        got = self.arrange(observed.logits)
        self.check_logits(got)
        self.check_classes(observed.classes)
        if not observed.stalled:
            self.check_layer_cycles(observed.layer_cycles)
        return got


# --------------------------------------------------------------------------- simulator side


def read_counters(signal, n: int) -> list[int]:
    """The ``n`` 32-bit counters packed in ``signal`` (layer 0 in the low bits)."""
    word = int(signal.value)
    mask = (1 << COUNTER_BITS) - 1
    return [(word >> (COUNTER_BITS * k)) & mask for k in range(n)]


class Driver:
    """Puts words on a valid/ready input stream (``<name>__valid``, ``__payload``,
    ``__ready``), one per transfer; before each word, an idle cycle with chance ``gap``
    (rolled again every idle cycle).  Words are masked to the payload's width (two's
    complement for negative codes).

    Members
    -------
    first_accept : int or None
        The design's ``cycles`` counter in the cycle that transferred the first word.
    """

    def __init__(self, dut, name: str, words, *, gap: float = 0.0, rng=None):
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.ready = getattr(dut, f"{name}__ready")
        self.counter = dut.cycles
        mask = (1 << len(self.payload)) - 1
        # Python integers: a word of several codes may be wider than 64 bits
        self.words = [int(w) & mask for w in
                      (words.tolist() if isinstance(words, np.ndarray) else words)]
        self.gap, self.rng = gap, rng
        self.sent = 0
        self.presenting = False
        self.first_accept = None
        self._valid = 0
        self.valid.value = 0

    @property
    def done(self) -> bool:
        return self.sent == len(self.words)

    def drive(self) -> None:
        """At a falling edge: present the next word, or stay idle."""
        if self.presenting:
            return
        if self.done or (self.gap and self.rng.random() < self.gap):
            if self._valid:  # write a signal only when it changes: fewer simulator calls
                self.valid.value = self._valid = 0
            return
        self.payload.value = self.words[self.sent]
        if not self._valid:
            self.valid.value = self._valid = 1
        self.presenting = True

    def sample(self) -> None:
        """In ``ReadOnly``: a presented word with ``ready`` high is transferred."""
        if self.presenting and self.ready.value:
            if self.first_accept is None:
                self.first_accept = int(self.counter.value)
            self.sent += 1
            self.presenting = False


class StimulusDriver:
    """The input words from the stimulus memory of the wrapper
    :func:`sim.stimulus.testbench_verilog` builds: the same transfers as :class:`Driver`
    with no gaps, with no Python in the cycles that transfer them.

    At construction the words go to :data:`sim.stimulus.STIMULUS_FILE` in the simulator's
    working folder and the wrapper loads them; the first :meth:`drive` (the cycle in which
    :class:`Driver` would present the first word) turns the memory on.  To the scoreboard it
    is a driver with nothing left to present (:attr:`done`), so the cycles that only take
    input words can be skipped.

    Members
    -------
    words : list of int
        The words, masked to the payload's width.
    """

    done = True
    presenting = False
    gap = 0.0

    def __init__(self, dut, words: list[int]):
        from sim.stimulus import STIMULUS_FILE

        self.dut, self.words = dut, words
        with open(STIMULUS_FILE, "w") as f:
            f.write("".join(f"{w:x}\n" for w in words))
        self._on = False
        dut.rtl_gen_stim_on.value = 0
        dut.rtl_gen_stim_count.value = len(words)
        dut.rtl_gen_stim_load.value = 1  # $readmemh on this edge

    @property
    def sent(self) -> int:
        return int(self.dut.rtl_gen_stim_sent.value)

    @property
    def first_accept(self) -> int | None:
        return int(self.dut.rtl_gen_stim_first.value) if self.sent else None

    def drive(self) -> None:
        if not self._on:
            self.dut.rtl_gen_stim_on.value = 1
            self._on = True

    def sample(self) -> None:
        pass


class StreamMonitor:
    """Records the payload of every transfer on a valid/ready output stream; drives its
    ``ready``, low in a cycle with chance ``stall``.

    Members
    -------
    values : list of int
        The payloads, read as signed integers (``signed``) or unsigned bit patterns.
    last_transfer : int or None
        The design's ``cycles`` counter in the cycle of the last transfer.
    """

    def __init__(self, dut, name: str, *, signed: bool, stall: float = 0.0, rng=None):
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.ready = getattr(dut, f"{name}__ready")
        self.counter = dut.cycles
        self.signed, self.stall, self.rng = signed, stall, rng
        self.values: list[int] = []
        self.last_transfer = None
        self._ready = 0
        self.ready.value = 0

    def drive(self) -> None:
        ready = 0 if self.stall and self.rng.random() < self.stall else 1
        if ready != self._ready:  # write a signal only when it changes
            self.ready.value = self._ready = ready

    def sample(self) -> None:
        if self._ready and self.valid.value:
            v = self.payload.value
            self.values.append(v.to_signed() if self.signed else v.to_unsigned())
            self.last_transfer = int(self.counter.value)


class PulseMonitor:
    """Records the payload of every cycle in which an always-ready stream is valid."""

    def __init__(self, dut, name: str):
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.values: list[int] = []

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        if self.valid.value:
            self.values.append(int(self.payload.value))


class Scoreboard:
    """One run of a network engine against :class:`Expected`: drives the images with the
    traffic pattern (``gap``, ``stall``, seeded by ``seed``), collects logits, classes and
    counters, and gives an :class:`Observed` for the :class:`Checker`.

    ``max_cycles`` bounds the run: a design that stops producing logits is reported as a
    timeout instead of hanging the simulator.
    """

    def __init__(self, dut, expected: Expected, *, gap: float = 0.0, stall: float = 0.0,
                 seed: int = 0, max_cycles: int | None = None):
        self.dut, self.expected = dut, expected
        self.stall = stall
        self.max_cycles = max_cycles
        self.driver = Driver(dut, "i", expected.words(), gap=gap,
                             rng=np.random.default_rng([seed, 0]))
        self.logits = StreamMonitor(dut, "o", signed=expected.logit_format == "int",
                                    stall=stall, rng=np.random.default_rng([seed, 1]))
        self.classes = PulseMonitor(dut, "cls")
        self.checker = Checker(expected)

    async def reset(self, controls: dict | None = None, *, clock: bool = True) -> None:
        """Start the clock (unless the design makes its own: ``clock`` False), set the
        control inputs (port name → value), reset two cycles."""
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import ClockCycles

        dut = self.dut
        for name, value in (controls or {}).items():
            getattr(dut, name).value = int(value)
        if clock:
            cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
        dut.rst.value = 1
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0

    def _quiet(self) -> bool:
        """In ``ReadOnly``: nothing can happen in the next cycles until the design raises a
        ready or valid, so the parts need not run each cycle.  That holds when no traffic
        pattern rolls dice each cycle (``gap`` and ``stall`` 0), the driver has sent every
        word or waits on ``ready`` with a word presented, and no output is valid."""
        d = self.driver
        return (not d.gap and not self.stall and (d.done or d.presenting)
                and not self.logits.valid.value and not self.classes.valid.value)

    async def _skip(self, cycle: int) -> int:
        """Let the simulator run until the driver's ``ready``, the logits' or the classes'
        ``valid`` rises (or ``max_cycles`` is reached); returns the falling edges passed.

        In the cycles skipped, :meth:`run` would write nothing and transfer nothing: the
        driver keeps its word presented (or has none), the monitors keep ``ready`` high.
        Every counter the checks read is the design's own, so the results are the same as
        clocking the parts each cycle, at the simulator's speed instead of Python's."""
        from cocotb.triggers import First, RisingEdge, Timer
        from cocotb.utils import get_sim_time

        edges = [RisingEdge(self.logits.valid), RisingEdge(self.classes.valid)]
        if not self.driver.done:
            edges.append(RisingEdge(self.driver.ready))
        if self.max_cycles is not None:
            edges.append(Timer(max(1, self.max_cycles - cycle) * PERIOD_NS, unit="ns"))
        start = get_sim_time(unit="ns")
        await First(*edges)
        return int((get_sim_time(unit="ns") - start) // PERIOD_NS)

    async def run(self) -> Observed:
        """Clock the parts until every logit and class is in (or ``max_cycles`` passed)."""
        from cocotb.triggers import FallingEdge, ReadOnly

        e = self.expected
        parts = (self.driver, self.logits, self.classes)
        falling, settled = FallingEdge(self.dut.clk), ReadOnly()
        want_logits = e.batches * e.logits_per_batch
        want_classes = e.batches * e.rows
        cycle, after = 0, 0
        timed_out = False
        while (len(self.logits.values) < want_logits
               or (len(self.classes.values) < want_classes and after < CLASS_WAIT)):
            if self.max_cycles is not None and cycle >= self.max_cycles:
                timed_out = True
                break
            await falling
            for part in parts:
                part.drive()
            await settled
            for part in parts:
                part.sample()
            cycle += 1
            if len(self.logits.values) >= want_logits:
                after += 1
            elif self._quiet():
                cycle += await self._skip(cycle)
        first = self.driver.first_accept
        last = self.logits.last_transfer
        await falling  # leave ReadOnly before anyone writes again
        self.logits.ready.value = 0
        return Observed(
            logits=self.logits.values, classes=self.classes.values,
            layer_cycles=read_counters(self.dut.layer_cycles, len(e.layer_cycles))
            if e.layer_cycles else [],
            cycles=None if first is None or last is None else last - first + 1,
            stalled=bool(self.stall), timed_out=timed_out)
