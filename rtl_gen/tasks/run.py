"""``run``: classify images on a board over its UART and compare with the golden model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..design import golden
from ..design.network import Network
from ..errors import RtlGenError
from ..hw.hostlink import network_id
from ..hw.tr import control_values
from ..protocol import DesignInfo, HostClient, open_serial
from .common import (
    HOST_LINK_INTEGER_ONLY,
    Progress,
    encode_inputs,
    evaluation_data,
    first,
    read_int_network,
    tr_control,
)

__all__ = ["RunResult", "run"]


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
        return not self.logit_mismatches and np.array_equal(self.classes, self.golden_classes)

    @property
    def summary(self) -> str:
        n = self.images
        return (f"{self.network.name} on {self.port}: {n} images, accuracy "
                f"{100 * self.accuracy:.2f}%, "
                f"{int(np.sum(self.classes == self.golden_classes))}/{n} classes and "
                f"{n - self.logit_mismatches}/{n} logit vectors equal to the golden model; "
                f"{int(np.median(self.cycles))} cycles per batch of {self.info.rows} (median)")

    def failure(self) -> str | None:
        """One line saying what differs from the golden model, or None."""
        return None if self.ok else \
            f"{self.logit_mismatches} images' logits differ from the golden model"


def run(port: str, bundle: Path, *, baud: int = 115200, data: Path | None = None,
        images: int | None = None, timeout: float = 2.0, conventional: bool = False,
        tr_k: int | None = None, tr_s: int | None = None, link=None,
        progress: Progress | None = None) -> RunResult:
    """Send the images of ``data`` (default: the digits test split), or the first ``images``,
    to the board on the serial ``port`` with the host protocol (:mod:`rtl_gen.protocol`), read
    classes and logits back and set them beside the golden model's (:attr:`RunResult.ok`).

    ``link``: an open transport (``write``, ``read``) to use instead of opening ``port``
    (the caller closes it).  The term-revealing options set the board's run-time registers
    first.  Progress: the loop ``"images"``.  A float bundle, a board holding another network
    or a link that fails raise :class:`~rtl_gen.errors.RtlGenError`.
    """
    net = read_int_network(bundle, HOST_LINK_INTEGER_ONLY)
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
    finally:
        if own:
            link.close()
    return RunResult(net, port, info, classes, logits, golden.predict(net, x_int, control),
                     golden.forward(net, x_int, control), y, cycles)
