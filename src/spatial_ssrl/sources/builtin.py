"""The built-in photos: natural RGB photos that scikit-image ships inside its package.

They let ``ssrl generate --out DIR`` run with no download. The files are read from
scikit-image's data folder like any other input, so a sample's ``source`` is a real path.
"""

from __future__ import annotations

import os

from .base import SourceRef

# Colour photographs bundled in skimage/data (no network fetch needed).
BUILTIN_PHOTO_FILES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
)


def builtin_data_dir() -> str:
    import skimage

    return os.path.join(os.path.dirname(skimage.__file__), "data")


def builtin_photos() -> list[SourceRef]:
    root = builtin_data_dir()
    refs = []
    for name in BUILTIN_PHOTO_FILES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            refs.append(SourceRef(id=f"skimage/{name}", path=path))
    if not refs:
        raise FileNotFoundError(f"no built-in photos found in {root}")
    return refs
