"""rtl_gen: a generator of FPGA accelerators for quantized neural networks.

The package is the pipeline, in layers whose imports go one way only (downward; a test,
``tests/test_layering.py``, enforces it)::

    errors, devices   the error types and the FPGA device table
    numerics          pure numpy arithmetic: every format and operation, bit for bit
    design            what a network is and computes: integer and float networks, their
                      golden models and cycle models (pure numpy, never Amaranth)
    data | bundle     data sets and loaders | networks on disk (one folder format, two families)
    training          float models, post-training quantization, QAT, MPWN search
    protocol          the host link: register map, frames, client
    hw                Amaranth components: PEs, arrays, layer and network engines, host link
    flow              Verilog to bitstreams: synthesis, place and route, reports
    boards | sim      (top-level folders) board files | cocotb testbenches and their runner
    tasks             what each command does, callable from Python and from tests
    cli               option parsing and printing

``numerics``, ``design``, ``data``, ``bundle`` and ``training`` never import Amaranth.
"""

__version__ = "0.1.0"
