"""Amaranth hardware: processing elements, arrays, layers and the network.

This layer asks :mod:`rtl_gen.numerics` for every encoding and table; it never re-derives
arithmetic that the numerics define.
"""
