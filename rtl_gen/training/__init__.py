"""Models before hardware: the float MLP, post-training quantization, quantization-aware
training and its bit-width search, MPWN's weight-space search and reduced-float formats,
and the shipped default networks.  PyTorch is needed only by :mod:`.qat` and
:mod:`.mpwn_train` (the ``torch`` extra)."""
