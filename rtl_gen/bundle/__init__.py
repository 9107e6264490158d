"""Weight bundles: networks on disk, versioned and validated.

One container (:mod:`.container`: ``manifest.json`` plus one ``.npy`` file per array, written
atomically, validated on read) carries both network families, each a small format module:
:mod:`.integer` the integer networks of :mod:`rtl_gen.design.network`, :mod:`.floating` the
float-activation networks of :mod:`rtl_gen.design.float_network`.  ``weights/FORMAT.md``
documents every field.

:func:`read_bundle` is the front door: it reads either family, as the manifest's ``format``
says.  :func:`read_int_bundle` and :func:`read_float_bundle` read one family only and refuse
the other (for code that needs one kind of network).
"""

from __future__ import annotations

from ..design.float_network import FloatNetwork
from ..design.network import Network
from .container import FLOAT_FORMAT_NAME, FORMAT_NAME, MANIFEST_NAME, bundle_format, is_bundle
from .floating import FLOAT_FORMAT_VERSION, read_float_bundle, write_float_bundle
from .integer import (
    FORMAT_VERSION,
    MANIFEST_SCHEMA,
    SUPPORTED_VERSIONS,
    read_int_bundle,
    write_bundle,
)

__all__ = [
    "FLOAT_FORMAT_NAME",
    "FLOAT_FORMAT_VERSION",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "SUPPORTED_VERSIONS",
    "bundle_format",
    "is_bundle",
    "read_bundle",
    "read_float_bundle",
    "read_int_bundle",
    "write_bundle",
    "write_float_bundle",
]


def read_bundle(path) -> Network | FloatNetwork:
    """Read and validate the bundle folder at ``path``, integer or float.

    A manifest whose ``format`` is :data:`FLOAT_FORMAT_NAME` is read by
    :func:`read_float_bundle` into a :class:`~rtl_gen.design.float_network.FloatNetwork`;
    anything else by :func:`read_int_bundle` into a :class:`~rtl_gen.design.network.Network`
    (which names what is wrong with a folder that is no bundle, or of an unknown format).

    Raises
    ------
    BundleError
        At the first problem, naming the file, the layer and the field.
    """
    if bundle_format(path) == FLOAT_FORMAT_NAME:
        return read_float_bundle(path)
    return read_int_bundle(path)
