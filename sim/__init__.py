"""cocotb testbenches and the simulator runner (see ``sim/README.md``)."""
