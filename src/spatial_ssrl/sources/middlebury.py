"""Built-in RGB-D source: the Middlebury 2014 "Motorcycle" pair that scikit-image ships.

Files (inside scikit-image's ``data`` folder, no download):

- ``motorcycle_left.png``: 741 x 500 RGB, the left view (cam0);
- ``motorcycle_disp.npz``: one array ``arr_0``, float32 (500, 741), the ground-truth
  disparity of the left view in pixels of this 741 x 500 grid (values about 7.2 to 59.9);
  pixels without ground truth hold ``inf`` (about 7 % of the map; scikit-image's docstring
  says NaN, the file has inf: both are read as invalid).

Calibration. Middlebury 2014's ``calib.txt`` for Motorcycle gives, at the full
2964 x 2000 resolution: cam0 fx = fy = 3979.911, cx = 1244.772, cy = 1019.507,
doffs = 124.343 (the x-difference of the two cameras' principal points), baseline =
193.001 mm. scikit-image's images are that data downscaled by exactly 4 in both directions
(2964 / 4 = 741, 2000 / 4 = 500, ``downscale_local_mean``), and ``skimage.data.
stereo_motorcycle``'s docstring states the calibration valid for the downscaled pair and
its disparity: f = 994.978 px, cx = 311.193, cy = 254.877, doffs = 31.086 px,
baseline 193.001 mm; these are the full-resolution values divided by 4, so the bundled
disparity is already expressed in downscaled pixels.

Depth = f * baseline / (d + doffs) = 994.978 * 0.193001 / (d + 31.086) m, i.e. about
2.1 m (d = 59.9, nearest part of the motorcycle) to 5.0 m (d = 7.2, back wall). That
matches the scene (a motorcycle a couple of metres in front of the rig, a studio wall
behind). Ignoring ``doffs`` would put the wall at about 27 m, which is not plausible for
an indoor studio, so the offset matters and is passed as ``disparity_offset``.
The depth is therefore ``metric``.
"""

from __future__ import annotations

import os

from .base import SourceRef
from .builtin import builtin_data_dir

MOTORCYCLE_RGB = "motorcycle_left.png"
MOTORCYCLE_DISPARITY = "motorcycle_disp.npz"

# Middlebury 2014 Motorcycle calib.txt, full resolution 2964 x 2000.
FULL_RES = (2964, 2000)
FULL_FX = 3979.911
FULL_CX = 1244.772
FULL_CY = 1019.507
FULL_DOFFS = 124.343
BASELINE_M = 0.193001

DOWNSCALE = 4  # scikit-image's copies are the full-resolution data reduced by 4


def motorcycle_calibration() -> dict:
    """Calibration on the 741 x 500 grid of the bundled files."""
    s = 1.0 / DOWNSCALE
    return {
        "intrinsics": (FULL_FX * s, FULL_FX * s, FULL_CX * s, FULL_CY * s),
        "baseline": BASELINE_M,
        "disparity_offset": FULL_DOFFS * s,
        "size": (FULL_RES[0] // DOWNSCALE, FULL_RES[1] // DOWNSCALE),
    }


def builtin_rgbd() -> list[SourceRef]:
    """The bundled RGB-D sources (one: Middlebury Motorcycle), metric depth from disparity.

    The id equals the one :func:`.builtin.builtin_photos` gives the same image, so a run
    that uses both lists should keep this RGB-D ref in place of the plain one."""
    root = builtin_data_dir()
    rgb = os.path.join(root, MOTORCYCLE_RGB)
    disp = os.path.join(root, MOTORCYCLE_DISPARITY)
    if not (os.path.isfile(rgb) and os.path.isfile(disp)):
        raise FileNotFoundError(f"scikit-image's Middlebury motorcycle pair is missing from {root}")
    cal = motorcycle_calibration()
    return [
        SourceRef(
            id=f"skimage/{MOTORCYCLE_RGB}",
            path=rgb,
            kind="rgbd",
            depth=disp,
            depth_format="disparity",
            intrinsics=cal["intrinsics"],
            baseline=cal["baseline"],
            disparity_offset=cal["disparity_offset"],
        )
    ]
