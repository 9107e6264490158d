"""``verify``: simulate a bundle's generated network (cocotb) against the golden model, image
by image; integer and float bundles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..bundle import read_bundle
from ..design.float_network import FloatNetwork
from ..design.network import Network
from ..devices import DEVICES
from ..errors import RtlGenError
from ..hw.network import plan_network
from .common import (
    OptionError,
    Progress,
    bitserial_plan,
    encode_inputs,
    evaluation_data,
    first,
    float_shapes,
    network_arrays,
    notify,
    sim_extra,
    tr_control,
    unrolled_choice,
)

__all__ = ["VerifyResult", "verify"]


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    network: Network | FloatNetwork
    #: The simulation's result: ``images``, ``cycles``, ``layer_cycles``,
    #: ``model_layer_cycles`` (:mod:`sim.verify`).
    simulation: dict

    @property
    def summary(self) -> str:
        r = self.simulation
        per = f"({r['cycles'] / r['images']:.1f} per inference)"
        if isinstance(self.network, FloatNetwork):
            return (f"{self.network.name}: {r['images']} images, every fp32 logit and class "
                    f"equal to the golden model; {r['cycles']} cycles {per}; layer cycles "
                    f"{r['layer_cycles']} (model {r['model_layer_cycles']})")
        return (f"{self.network.name}: {r['images']} images, every logit and class equal to "
                f"the golden model; {r['cycles']} cycles {per}; layer cycles per batch "
                f"{r['layer_cycles']} (model {r['model_layer_cycles']})")


def verify(bundle: Path, *, data: Path | None = None, images: int | None = None,
           simulator: str = "verilator", gap: float = 0.0, stall: float = 0.0,
           rows: int | None = None, cols: int | None = None, lanes: int | None = None,
           multiplier: str = "lut", pipeline: int = 0, conventional: bool = False,
           tr_k: int | None = None, tr_s: int | None = None, folding=None,
           gates: str | None = None, progress: Progress | None = None) -> VerifyResult:
    """Run the images of ``data`` (default: the digits test split), or the first ``images``
    of them, through the generated Verilog of the network of ``bundle`` under ``simulator``,
    with input bubbles (``gap``) and output back-pressure (``stall``).

    Integer networks take the array options (or the folding planner's ``folding`` options:
    :class:`~rtl_gen.tasks.common.FoldingOptions`) and the run-time term-revealing controls
    (``conventional``, ``tr_k``, ``tr_s``); a float network takes ``cols`` lanes per layer.
    The simulation is :func:`sim.verify.verify_network` (either family); any difference
    from the golden model raises :class:`~rtl_gen.errors.RtlGenError`.  ``gates``: a device
    name; simulate the gate-level netlist that Yosys maps for its family instead of the RTL
    (:mod:`rtl_gen.flow.gates`).
    """
    if gates is not None and gates not in DEVICES:
        raise OptionError(f"--gates takes a device, one of {', '.join(DEVICES)}; not "
                          f"{gates!r}", option="--gates")
    net = read_bundle(bundle)
    if net.family != "float" and not net.is_dense:
        from .generate import conv_network_arrays

        if conventional or tr_k is not None or tr_s is not None:
            raise OptionError("--conventional/--tr-k/--tr-s apply to term-revealing bundles")
        arrays = conv_network_arrays(net, rows=rows, cols=cols, lanes=lanes,
                                     multiplier=multiplier, pipeline=pipeline, folding=folding,
                                     progress=progress)
        try:
            from ..hw.conv import plan_conv_chain

            plan_conv_chain(net, arrays)  # refuse a design that cannot be built first
        except ValueError as e:
            raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None
        options, build_time = {"arrays": arrays}, "a minute or two"
    elif net.family == "float":
        if conventional or tr_k is not None or tr_s is not None:
            raise OptionError("--conventional/--tr-k/--tr-s apply to term-revealing "
                              "bundles, not to a float bundle")
        options = {"lanes": float_shapes(net, cols, lanes, folding, progress)}
        build_time = "a minute or two"
    elif (bitserial := bitserial_plan(net, folding, rows=rows, cols=cols, lanes=lanes,
                                      multiplier=multiplier, pipeline=pipeline)) is not None:
        from ..hw.bitserial import BitSerialNetworkEngine

        if conventional or tr_k is not None or tr_s is not None:
            raise OptionError("--conventional/--tr-k/--tr-s apply to the term-revealing "
                              "engine, not to the bit-serial engine")
        options = {"engine": BitSerialNetworkEngine.from_plan(bitserial)}
        build_time = "about a minute"
    elif (unrolled := unrolled_choice(
            net, folding, progress,
            tr_runtime=conventional or tr_k is not None or tr_s is not None)) is not None:
        from ..hw.unrolled import UnrolledNetworkEngine

        if conventional or tr_k is not None or tr_s is not None:
            raise OptionError("--conventional/--tr-k/--tr-s set the term-revealing arrays' "
                              "run-time registers; the unrolled engine builds the bundle's "
                              "own setting")
        options = {"engine": UnrolledNetworkEngine.from_plan(unrolled)}
        build_time = "a few minutes"
    else:
        arrays, per_beat = network_arrays(net, rows=rows, cols=cols, lanes=lanes,
                                          multiplier=multiplier, pipeline=pipeline,
                                          folding=folding, progress=progress)
        try:
            # refuse a design that cannot be built before simulating
            plan_network(net, arrays, in_per_beat=per_beat)
        except ValueError as e:
            raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None
        options = {"arrays": arrays, "control": tr_control(net, bundle, conventional, tr_k, tr_s)}
        if per_beat > 1:
            options["in_per_beat"] = per_beat
        build_time = "about a minute"
    x, _ = evaluation_data(net, data)
    codes = encode_inputs(net, first(x, images), data)
    sim, failures = sim_extra()
    if gates is not None:
        options["gates"] = gates
        build_time = "several minutes: synthesis, then the netlist's build"
    notify(progress, f"verifying {net.name}: {len(codes)} images through the "
                     f"{'gate-level netlist for ' + gates if gates else 'generated Verilog'}"
                     f" ({simulator}; building takes {build_time} the first time)...")
    try:
        return VerifyResult(net, sim.verify_network(net, codes, simulator=simulator, gap=gap,
                                                    stall=stall, **options))
    except failures as e:
        raise RtlGenError(str(e)) from None
