"""Sources: where items come from.

A source yields :class:`Item` objects (an RGB array plus optional depth, mask and
intrinsics, and a stable id). Discovery (which files make up a run) and loading (turning
one file into an item, or a named skip) are separate so the engine can plan a run before
reading any pixels.
"""

from .base import Item, SourceRef, SourceSkip
from .builtin import builtin_photos
from .files import IMAGE_EXTENSIONS, discover
from .images import LoadOptions, load_item

__all__ = [
    "IMAGE_EXTENSIONS",
    "Item",
    "LoadOptions",
    "SourceRef",
    "SourceSkip",
    "builtin_photos",
    "discover",
    "load_item",
]
