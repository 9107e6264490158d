"""The FPGA flow: synthesis, place-and-route and their reports (YoWASP tools only).

See :mod:`rtl_gen.flow.synth`.
"""

from .synth import (
    DEFAULT_FREQ_MHZ,
    DEFAULT_WORKDIR,
    DoesNotFitError,
    FlowError,
    PnrResult,
    Port,
    SynthStats,
    Toolchain,
    ToolFailedError,
    ToolNotFoundError,
    component_verilog,
    harness_verilog,
    place_and_route,
    synth,
    tool_versions,
)

__all__ = [
    "DEFAULT_FREQ_MHZ",
    "DEFAULT_WORKDIR",
    "DoesNotFitError",
    "FlowError",
    "PnrResult",
    "Port",
    "SynthStats",
    "ToolFailedError",
    "ToolNotFoundError",
    "Toolchain",
    "component_verilog",
    "harness_verilog",
    "place_and_route",
    "synth",
    "tool_versions",
]
