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
from .middlebury import builtin_rgbd
from .rgbd import DiscoveryReport, discover_rgbd, load_rgbd_item



def load_source_item(ref: SourceRef, options: LoadOptions = LoadOptions()) -> Item:
    """Load any source ref: plain images, RGB-D pairs and procedural scenes."""
    if ref.kind == "image":
        return load_item(ref, options)
    if ref.kind == "rgbd":
        return load_rgbd_item(ref, options)
    if ref.kind == "procedural":
        from .procedural import load_procedural_item

        return load_procedural_item(ref, options)
    raise ValueError(f"unknown source kind {ref.kind!r} for {ref.path}")


__all__ = [
    "load_source_item",
    "IMAGE_EXTENSIONS",
    "Item",
    "LoadOptions",
    "SourceRef",
    "SourceSkip",
    "DiscoveryReport",
    "builtin_photos",
    "builtin_rgbd",
    "discover_rgbd",
    "load_rgbd_item",
    "discover",
    "load_item",
]
