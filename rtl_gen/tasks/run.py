"""``run``: classify images on a board over its UART and compare with the golden model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..design import golden
from ..design.network import Network
from ..errors import RtlGenError
from ..flow.network_build import DEFAULT_BAUD
from ..hw.hostlink import network_id
from ..hw.tr import control_values
from ..protocol import BENCH_MAX, DesignInfo, HostClient, open_serial
from .common import (
    HOST_LINK_INTEGER_ONLY,
    Progress,
    encode_inputs,
    evaluation_data,
    first,
    read_int_network,
    tr_control,
)

__all__ = ["BENCH_BATCHES", "Bench", "RunResult", "run"]

#: Batches of ``rtl-gen run``'s on-board throughput run (BENCH) unless told otherwise.
BENCH_BATCHES = 256


@dataclasses.dataclass(frozen=True)
class Bench:
    """The on-board throughput run: the last batch ``batches`` times back to back."""

    batches: int
    rows: int
    #: Cycles the board counted, first input code to last class.
    cycles: int
    #: The last batch's logits equal the golden model's.
    exact: bool
    #: The board's clock and the cycle model's interval per batch (from ``design.json``),
    #: or None.
    clock_mhz: float | None = None
    interval: int | None = None

    @property
    def cycles_per_batch(self) -> float:
        return self.cycles / self.batches

    @property
    def measured_per_s(self) -> float | None:
        """Inferences per second the board measured (clock x images / cycles)."""
        if self.clock_mhz is None:
            return None
        return self.clock_mhz * 1e6 * self.batches * self.rows / self.cycles

    @property
    def model_per_s(self) -> float | None:
        """Inferences per second of the cycle model (clock x rows / interval)."""
        if self.clock_mhz is None or not self.interval:
            return None
        return self.clock_mhz * 1e6 * self.rows / self.interval

    @property
    def summary(self) -> str:
        text = (f"on-board throughput: {self.batches} batches of {self.rows} back to back in "
                f"{self.cycles:,} cycles, {self.cycles_per_batch:,.1f} cycles per batch")
        if self.interval:
            text += f" (model: interval {self.interval:,})"
        if self.measured_per_s is not None:
            text += f"; {self.measured_per_s:,.0f} inferences/s measured at " \
                    f"{self.clock_mhz:g} MHz"
            if self.model_per_s is not None:
                text += f", model {self.model_per_s:,.0f}"
        if not self.exact:
            text += "; ITS LOGITS DIFFER FROM THE GOLDEN MODEL"
        return text


@dataclasses.dataclass(frozen=True)
class RunResult:
    network: Network
    port: str
    #: What the board said about itself (INFO).
    info: DesignInfo
    #: Per image: the board's class and logits, the golden model's, and the label.
    classes: np.ndarray
    logits: np.ndarray
    golden_classes: np.ndarray
    golden_logits: np.ndarray
    labels: np.ndarray
    #: The cycles of every batch, as the board counted them.
    cycles: list[int]
    #: The on-board throughput run, or None.
    bench: Bench | None = None

    @property
    def images(self) -> int:
        return len(self.classes)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.classes == self.labels))

    @property
    def logit_mismatches(self) -> int:
        """Images whose logits differ from the golden model's."""
        return int(np.sum(np.any(self.logits != self.golden_logits, axis=1)))

    @property
    def ok(self) -> bool:
        """Every logit and class equal to the golden model's."""
        return (not self.logit_mismatches and np.array_equal(self.classes, self.golden_classes)
                and (self.bench is None or self.bench.exact))

    @property
    def summary(self) -> str:
        n = self.images
        return (f"{self.network.name} on {self.port}: {n} images, accuracy "
                f"{100 * self.accuracy:.2f}%, "
                f"{int(np.sum(self.classes == self.golden_classes))}/{n} classes and "
                f"{n - self.logit_mismatches}/{n} logit vectors equal to the golden model; "
                f"{int(np.median(self.cycles))} cycles per batch of {self.info.rows} (median)"
                + ("" if self.bench is None else "\n" + self.bench.summary))

    def failure(self) -> str | None:
        """One line saying what differs from the golden model, or None."""
        if self.ok:
            return None
        if self.logit_mismatches or not np.array_equal(self.classes, self.golden_classes):
            return f"{self.logit_mismatches} images' logits differ from the golden model"
        return "the throughput run's logits differ from the golden model"


def run(port: str, bundle: Path, *, baud: int | None = None, data: Path | None = None,
        images: int | None = None, timeout: float = 2.0, conventional: bool = False,
        tr_k: int | None = None, tr_s: int | None = None, bench: int = BENCH_BATCHES,
        design: Path | None = None, link=None, progress: Progress | None = None) -> RunResult:
    """Send the images of ``data`` (default: the digits test split), or the first ``images``,
    to the board on the serial ``port`` with the host protocol (:mod:`rtl_gen.protocol`), read
    classes and logits back and set them beside the golden model's (:attr:`RunResult.ok`).

    ``baud``: the UART's rate (default: ``design``'s, else :data:`DEFAULT_BAUD`).  ``bench``:
    then run the last batch that many times back to back on the board (BENCH, 0: not) and
    report the cycles it counted (:class:`Bench`); ``design``: the build's ``design.json``,
    whose clock and cycle model turn them into inferences per second (and with which the
    wait for the throughput run's reply grows with its length).
    ``link``: an open transport (``write``, ``read``) to use instead of opening ``port``
    (the caller closes it).  The term-revealing options set the board's run-time registers
    first.  Progress: the loop ``"images"``.  A float bundle, a board holding another network
    or a link that fails raise :class:`~rtl_gen.errors.RtlGenError`.
    """
    net = read_int_network(bundle, HOST_LINK_INTEGER_ONLY)
    if not 0 <= bench <= BENCH_MAX:
        raise RtlGenError(f"the throughput run takes 0 to {BENCH_MAX} batches, not {bench}")
    design = _design(design)
    if baud is None:
        baud = design.get("baud", DEFAULT_BAUD)
    x, y = evaluation_data(net, data)
    x_int = encode_inputs(net, first(x, images), data)
    y = np.asarray(y[:len(x_int)])
    control = tr_control(net, bundle, conventional, tr_k, tr_s)
    own = link is None
    if own:
        link = open_serial(port, baud, timeout)
    try:
        client = HostClient(link)
        info = client.info()
        if info.design_id != network_id(net):
            raise RtlGenError(f"the board on {port} holds another network (design id "
                              f"0x{info.design_id:08X}, {bundle} is 0x{network_id(net):08X}); "
                              "build and load this bundle's bitstream")
        if control is not None:
            for name, value in zip(("TR_MODE", "TR_K", "TR_S"), control_values(control),
                                   strict=True):
                client.write_register(name, value)

        def step(done):
            if progress is not None:
                progress("images", done, len(x_int), unit="img")
        classes, logits, cycles = client.classify(x_int, progress=step)
        bench_result = None
        if bench:
            # the last batch sent, as the board holds it (padded with zeros)
            last = x_int[(len(x_int) - 1) // info.rows * info.rows:]
            last = np.concatenate([last, np.zeros((info.rows - len(last), info.features),
                                                  last.dtype)])
            clock, interval = _clock_interval(design)
            if own and clock and interval:  # the reply comes once every batch is through
                link.timeout = timeout + 2 * bench * interval / (clock * 1e6)
            res = client.bench(bench)
            exact = np.array_equal(res.logits, golden.forward(net, last, control))
            bench_result = Bench(bench, info.rows, res.cycles, bool(exact), clock, interval)
    finally:
        if own:
            link.close()
    return RunResult(net, port, info, classes, logits, golden.predict(net, x_int, control),
                     golden.forward(net, x_int, control), y, cycles, bench_result)


def _design(design: Path | None) -> dict:
    """The build's ``design.json`` (empty without one)."""
    if design is None:
        return {}
    import json

    try:
        d = json.loads(Path(design).read_text())
    except (OSError, ValueError) as e:
        raise RtlGenError(f"cannot read the build's design record {design}: {e}") from None
    if not isinstance(d, dict):
        raise RtlGenError(f"{design} is not a build's design record")
    return d


def _clock_interval(design: dict) -> tuple[float | None, int | None]:
    clock, interval = design.get("clock_mhz"), design.get("interval")
    return (float(clock) if isinstance(clock, (int, float)) else None,
            int(interval) if isinstance(interval, int) else None)
