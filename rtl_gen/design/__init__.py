"""What a network is and what it computes, in pure numpy (never Amaranth).

:mod:`.network` describes integer networks (dense layers of any weight scheme, with
requantization and term-revealing grouping) and :mod:`.golden` is their bit-exact golden
model and cycle model; :mod:`.conv` adds convolution, pooling and flatten layers over
flattened HWC feature maps, and :mod:`.conv_timing` their cycle model on a stream;
:mod:`.float_network` describes float-activation networks (MPWN weight spaces,
reduced-float weights) and is their golden model.  The hardware implements exactly these
models.
"""
