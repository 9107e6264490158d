"""rtl_gen: a generator of FPGA accelerators for quantized neural networks.

The package is layered, and imports go one way only::

    numerics  <-  golden  <-  hardware  <-  flow / CLI

``rtl_gen.numerics`` and ``rtl_gen.golden`` are pure numpy and never import Amaranth.
"""

__version__ = "0.1.0"
