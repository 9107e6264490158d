"""Exceptions that reach the user as one clear message and a non-zero exit."""

from __future__ import annotations


class RtlGenError(Exception):
    """Base class of every error the CLI reports as ``error: <message>`` (exit status 1)."""


class SpecError(RtlGenError, ValueError):
    """A design description (layer, network, scheme) is inconsistent.

    Parameters
    ----------
    field:
        The name of the offending field, as it is spelled in the weight bundle.
    message:
        What is wrong, quoting the bad value.
    layer:
        The layer's name, when the field belongs to one.
    """

    def __init__(self, field: str, message: str, *, layer: str | None = None):
        self.field = field
        self.layer = layer
        self.message = message
        where = f"layer {layer!r}: " if layer is not None else ""
        super().__init__(f"{where}field {field!r}: {message}")


class BundleError(RtlGenError):
    """A weight bundle is malformed; the message names the file, the layer and the field."""

    def __init__(self, file: str, message: str, *, layer: str | None = None,
                 field: str | None = None):
        self.file = file
        self.layer = layer
        self.field = field
        self.message = message
        where = [file]
        if layer is not None:
            where.append(f"layer {layer!r}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(": ".join(where) + ": " + message)


class ModelError(RtlGenError):
    """A user's float model (``.npz``) cannot be read or quantized."""


class DataError(RtlGenError):
    """A data set file (an IDX image or label file, an ``.npz`` of inputs and labels) cannot be
    read or holds something other than inputs and labels; the message names the file and
    what is wrong with it."""


class OutputError(RtlGenError):
    """An output (a file or a folder) cannot be written where it was asked for; the message
    names the path and the file system's reason."""
