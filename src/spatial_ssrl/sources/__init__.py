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

DEFAULT_PROCEDURAL_SCENES = 24


def default_refs(procedural_scenes: int = DEFAULT_PROCEDURAL_SCENES, seed: int = 0) -> list[SourceRef]:
    """The built-in inputs: scikit-image's photos, its Middlebury stereo pair with
    ground-truth disparity (replacing the plain left photo) and procedural RGB-D scenes."""
    from .procedural import procedural_refs

    rgbd = builtin_rgbd()
    taken = {r.id for r in rgbd}
    photos = [r for r in builtin_photos() if r.id not in taken]
    return photos + rgbd + procedural_refs(procedural_scenes, seed=seed)


def warm_up(refs) -> None:
    """Build, in this process, what loading ``refs`` needs once per process: the textures
    of the procedural scenes (about 0.26 s). Called before worker processes are forked,
    each worker inherits them instead of building its own."""
    if any(r.kind == "procedural" for r in refs):
        from .procedural import warm_up as procedural_warm_up

        procedural_warm_up()


def cool_down() -> None:
    """Undo :func:`warm_up` in a process that will load no source itself (the parent, once
    its workers are forked: they keep their own copies)."""
    import sys

    procedural = sys.modules.get(__name__ + ".procedural")
    if procedural is not None:
        procedural.cool_down()


_DEFAULT_LOAD = LoadOptions()


def load_source_item(ref: SourceRef, options: LoadOptions = _DEFAULT_LOAD) -> Item:
    """Load any source ref: plain images, RGB-D pairs, procedural scenes and videos."""
    if ref.kind == "image":
        return load_item(ref, options)
    if ref.kind == "rgbd":
        return load_rgbd_item(ref, options)
    if ref.kind == "procedural":
        from .procedural import load_procedural_item

        return load_procedural_item(ref, options)
    if ref.kind == "video":
        from .video import load_video_item

        return load_video_item(ref, options)
    raise ValueError(f"unknown source kind {ref.kind!r} for {ref.path}")


__all__ = [
    "IMAGE_EXTENSIONS",
    "DiscoveryReport",
    "Item",
    "LoadOptions",
    "SourceRef",
    "SourceSkip",
    "builtin_photos",
    "builtin_rgbd",
    "cool_down",
    "default_refs",
    "discover",
    "discover_rgbd",
    "load_item",
    "load_rgbd_item",
    "load_source_item",
    "warm_up",
]
