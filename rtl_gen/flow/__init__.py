"""The FPGA flow: synthesis, place-and-route and their reports (YoWASP tools only).

See :mod:`rtl_gen.flow.synth`.
"""

from .synth import (
    DEFAULT_FREQ_MHZ,
    DEFAULT_MAPPER,
    DEFAULT_SEEDS,
    DEFAULT_WORKDIR,
    DoesNotFitError,
    FlowError,
    PnrResult,
    Port,
    SeedSweep,
    SynthStats,
    Toolchain,
    ToolFailedError,
    ToolNotFoundError,
    component_verilog,
    harness_verilog,
    median_fmax,
    place_and_route,
    place_and_route_seeds,
    synth,
    synth_runs,
    tool_versions,
)

__all__ = [
    "DEFAULT_FREQ_MHZ",
    "DEFAULT_MAPPER",
    "DEFAULT_SEEDS",
    "DEFAULT_WORKDIR",
    "DoesNotFitError",
    "FlowError",
    "PnrResult",
    "Port",
    "SeedSweep",
    "SynthStats",
    "ToolFailedError",
    "ToolNotFoundError",
    "Toolchain",
    "component_verilog",
    "harness_verilog",
    "median_fmax",
    "place_and_route",
    "place_and_route_seeds",
    "synth",
    "synth_runs",
    "tool_versions",
]
