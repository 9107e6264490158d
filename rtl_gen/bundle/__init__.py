"""Weight bundles: networks on disk, versioned and validated.

One folder format (``manifest.json`` plus one ``.npy`` file per array, written atomically,
validated on read) carries both network families: :mod:`.integer` the integer networks of
:mod:`rtl_gen.design.network`, :mod:`.floating` the float-activation networks of
:mod:`rtl_gen.design.float_network`.  ``weights/FORMAT.md`` documents every field.
"""

from .floating import FLOAT_FORMAT_VERSION, read_float_bundle, write_float_bundle
from .integer import (
    FLOAT_FORMAT_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    SUPPORTED_VERSIONS,
    bundle_format,
    is_bundle,
    read_bundle,
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
    "write_bundle",
    "write_float_bundle",
]
