"""Procedural RGB-D scenes: a small ray caster in NumPy with exact depth and known geometry.

Each scene number (``scene_seed``) deterministically defines a room seen by a pinhole
camera: a textured floor, four walls (with framed photos hung on them, sometimes a rug on
the floor), and a handful of boxes and spheres resting on the floor. The scene is closed,
so every pixel sees a surface and the depth map is valid everywhere.

The scenes serve two purposes: a built-in RGB-D source for the depth tasks (no download
needed) and a test oracle, since the true 3D point behind every pixel and the object it
belongs to are known analytically (:func:`scene_geometry`).

Conventions
-----------
* Camera frame (OpenCV): the camera sits at the origin, X points right, Y points *down*,
  Z points forward along the optical axis. All coordinates are in metres.
* The camera is level: no pitch, no roll. The floor is the plane ``Y = camera_height``
  (positive, since Y points down), so the ground-plane coordinates of a point are simply
  its X and Z. Only the room (walls) is turned about the vertical axis.
* Pixel ``(u, v)`` = (column, row) is sampled by the ray through the image point
  ``(u, v)`` itself, i.e. pixel centres sit at integer coordinates (OpenCV convention):
  ``X = Z (u - cx) / fx``, ``Y = Z (v - cy) / fy``.
* ``depth`` is the Z coordinate of the surface point (planar depth, what RGB-D sensors
  report), *not* the length of the ray.
* Object ids: objects are numbered 1..n; the background surfaces have negative ids
  (:data:`SURFACE_NAMES`): -1 floor, -2 back wall, -3 left wall, -4 right wall, -5 front
  wall (behind the camera, never visible; it only closes the room).
* ``yaw_deg`` of a box is its rotation about the camera's vertical (Y) axis; positive
  values turn the box's own +Z axis toward +X.

A scene's layout does not depend on the image size: rendering seed 17 at 640x480 and at
1280x960 shows the same room, with intrinsics scaled to the pixel grid.

Posed views
-----------
The frame above (the default camera's) is the *scene frame*. :func:`render_view` renders
the same scene from a camera placed anywhere inside the room: a :class:`Pose` gives its
position in the scene frame (metres) and its orientation as a yaw about the vertical axis
(positive turns the camera's forward, +Z, toward +X: the camera turns right, the yaw
convention of the boxes) and a pitch (positive tilts the optical axis up, toward -Y).
There is no roll, so the camera's X axis stays horizontal. The camera-to-scene rotation is
``R = R_yaw @ R_pitch`` and a point maps as ``p_scene = R @ p_camera + position``. Depth,
intrinsics and pixel conventions are those of the posed camera; shading and textures live
in the scene frame, so a surface looks the same from every pose. The default pose (all
zeros) renders exactly what :func:`render_scene` renders, byte for byte.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .base import Item, SourceRef, SourceSkip

DEFAULT_WIDTH = 640
DEFAULT_HEIGHT = 480

GROUND_ID = -1
BACK_WALL_ID = -2
LEFT_WALL_ID = -3
RIGHT_WALL_ID = -4
FRONT_WALL_ID = -5
SURFACE_NAMES = {
    GROUND_ID: "floor",
    BACK_WALL_ID: "back_wall",
    LEFT_WALL_ID: "left_wall",
    RIGHT_WALL_ID: "right_wall",
    FRONT_WALL_ID: "front_wall",
}

# Mixed into every scene's seed so scene streams do not coincide with other generators
# seeded with small integers.
_STREAM_TAG = 0x5CE7E

# Colour photos from scikit-image's data folder used as textures (posters, box prints,
# rugs, balls) and its grey material photos (grain of floors and bricks).
_PHOTO_FILES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "color.png",
)
_GREY_FILES = ("grass.png", "gravel.png")
_TEXTURE_MAX_SIDE = 512

_HIT_EPS = 1e-6


# --------------------------------------------------------------------------- camera pose

#: Largest pitch (degrees, either way) a posed camera may have: the steepest ray then
#: still meets a wall at a finite distance (the room has no ceiling).
MAX_PITCH_DEG = 30.0
#: Least clearance (metres) a posed camera keeps from walls, the floor and objects.
CAMERA_MARGIN = 0.3
#: Highest a posed camera may stand above the floor (metres).
MAX_CAMERA_HEIGHT = 2.6


@dataclass(frozen=True)
class Pose:
    """A camera's place in the scene frame: position (x, y, z) in metres (Y points down,
    so a camera raised by 0.5 m has ``y = -0.5``), yaw and pitch in degrees (see the
    module docstring). ``Pose()`` is the default camera."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0

    def __post_init__(self) -> None:
        for name in ("x", "y", "z", "yaw_deg", "pitch_deg"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(float(value)):
                raise ValueError(f"pose {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def is_default(self) -> bool:
        return self.x == 0.0 and self.y == 0.0 and self.z == 0.0 and self.yaw_deg == 0.0 \
            and self.pitch_deg == 0.0

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    def rotation(self) -> np.ndarray:
        """3x3 camera-to-scene rotation ``R_yaw @ R_pitch``: its columns are the camera's
        right, down and forward axes in the scene frame."""
        cy, sy = math.cos(math.radians(self.yaw_deg)), math.sin(math.radians(self.yaw_deg))
        cp, sp = math.cos(math.radians(self.pitch_deg)), math.sin(math.radians(self.pitch_deg))
        yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
        pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        return yaw @ pitch

    def to_scene(self, points: Any) -> np.ndarray:
        """Camera-frame points (..., 3) in the scene frame."""
        return np.asarray(points, dtype=np.float64) @ self.rotation().T + self.position

    def to_camera(self, points: Any) -> np.ndarray:
        """Scene-frame points (..., 3) in this camera's frame."""
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation()

    def moved(self, right: float = 0.0, down: float = 0.0, forward: float = 0.0,
              turn_deg: float = 0.0, tilt_deg: float = 0.0) -> Pose:
        """This camera after a step along its own axes (metres) and then a turn (yaw,
        positive to the right) and a tilt (pitch, positive up)."""
        step = self.rotation() @ np.array([right, down, forward], dtype=np.float64)
        return Pose(self.x + float(step[0]), self.y + float(step[1]), self.z + float(step[2]),
                    self.yaw_deg + float(turn_deg), self.pitch_deg + float(tilt_deg))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (floats kept exactly: JSON round-trips them)."""
        return {"position": [self.x, self.y, self.z], "yaw_deg": self.yaw_deg, "pitch_deg": self.pitch_deg}

    @classmethod
    def from_dict(cls, data: Any) -> Pose:
        """The inverse of :meth:`to_dict`; ``pitch_deg`` may be left out. ValueError names
        what is wrong with malformed data."""
        if not isinstance(data, dict):
            # one exception type for every kind of malformed pose data
            raise ValueError(  # noqa: TRY004
                f"a pose is a dict with position, yaw_deg and pitch_deg, got {type(data).__name__}")
        unknown = set(data) - {"position", "yaw_deg", "pitch_deg"}
        if unknown:
            raise ValueError(f"unknown pose keys: {', '.join(sorted(unknown))}")
        pos = data.get("position")
        if not isinstance(pos, (list, tuple)) or len(pos) != 3:
            raise ValueError("pose position must be a list of three numbers [x, y, z]")
        if "yaw_deg" not in data:
            raise ValueError("pose has no yaw_deg")
        return cls(pos[0], pos[1], pos[2], data["yaw_deg"], data.get("pitch_deg", 0.0))


DEFAULT_POSE = Pose()


# --------------------------------------------------------------------------- scene model


@dataclass(frozen=True)
class SceneObject:
    """A box or sphere standing on the floor, in camera coordinates (metres)."""

    id: int
    kind: str
    """``box`` or ``sphere``."""
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    """Full extents along the object's own x, y (vertical), z axes; 2r for spheres."""
    yaw_deg: float = 0.0
    radius: float | None = None
    texture: str = ""

    @property
    def ground_xz(self) -> tuple[float, float]:
        """Position on the floor plane (X, Z)."""
        return (self.center[0], self.center[2])

    @property
    def footprint_radius(self) -> float:
        """Radius of a vertical cylinder around the centre that contains the object."""
        if self.kind == "sphere":
            return float(self.radius)
        return 0.5 * math.hypot(self.size[0], self.size[2])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "center": [round(c, 6) for c in self.center],
            "size": [round(s, 6) for s in self.size],
            "yaw_deg": round(self.yaw_deg, 4),
            "texture": self.texture,
        }
        if self.radius is not None:
            out["radius"] = round(self.radius, 6)
        return out


@dataclass(frozen=True)
class _Wall:
    id: int
    normal: tuple[float, float]
    """Horizontal unit normal (X, Z) pointing out of the room."""
    offset: float
    """The wall is the plane normal . (X, Z) = offset (offset > 0: the camera is inside)."""
    tangent: tuple[float, float]
    """Horizontal unit vector along the wall, for texture coordinates."""


@dataclass(frozen=True)
class _Rect:
    """An axis-aligned rectangle in a surface's (s, t) texture plane showing a photo."""

    s0: float
    t0: float
    s1: float
    t1: float
    photo: str
    frame: float = 0.0


@dataclass(frozen=True)
class _Layout:
    """Everything a seed decides, independent of the image size."""

    seed: int
    hfov_deg: float
    fy_ratio: float
    cx_shift: float
    cy_shift: float
    camera_height: float
    room_yaw: float
    room: tuple[float, float, float, float]
    """Room bounds in room coordinates: left a, right a, back b, front b (front < 0)."""
    walls: tuple[_Wall, ...]
    light: tuple[float, float, float]
    """Unit vector from a surface toward the (directional) light."""
    ambient: float
    objects: tuple[SceneObject, ...]
    floor_style: str
    floor_grain: str
    floor_tint: tuple[float, float, float]
    floor_scale: float
    variation_table: tuple[float, ...]
    """Random brightness factors for individual planks and bricks."""
    rug: _Rect | None
    wall_style: str
    wall_tints: tuple[tuple[float, float, float], ...]
    """Per wall, in the order of ``walls``."""
    posters: tuple[tuple[int, _Rect], ...]
    """(wall id, rectangle in (along-wall, Y) coordinates)."""
    box_tops: tuple[tuple[float, float, float], ...]
    sphere_styles: tuple[str, ...]
    sphere_colours: tuple[tuple[tuple[float, float, float], ...], ...]

    def intrinsics(self, width: int, height: int) -> tuple[float, float, float, float]:
        fx = 0.5 * width / math.tan(math.radians(self.hfov_deg) / 2.0)
        fy = fx * self.fy_ratio
        cx = (width - 1) / 2.0 + self.cx_shift * width
        cy = (height - 1) / 2.0 + self.cy_shift * height
        return (fx, fy, cx, cy)

    def room_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (in camera X, Z) of the room's right (a) and forward (b) axes."""
        c, s = math.cos(self.room_yaw), math.sin(self.room_yaw)
        return np.array([c, -s]), np.array([s, c])

    def to_json(self, width: int, height: int) -> dict[str, Any]:
        fx, fy, cx, cy = self.intrinsics(width, height)
        return {
            "seed": self.seed,
            "width": width,
            "height": height,
            "camera": {
                "intrinsics": [round(fx, 6), round(fy, 6), round(cx, 6), round(cy, 6)],
                "height": round(self.camera_height, 6),
                "hfov_deg": round(self.hfov_deg, 4),
                "pitch_deg": 0.0,
                "roll_deg": 0.0,
            },
            "conventions": {
                "frame": "camera at origin; X right, Y down, Z forward (OpenCV); metres",
                "depth": "Z coordinate of the surface point, not ray length",
                "ground_plane": "Y = camera height; ground coordinates are (X, Z)",
                "pixel_centres": "integer coordinates",
                "yaw": "about +Y; positive turns the object's +Z toward +X",
            },
            "room": {
                "yaw_deg": round(math.degrees(self.room_yaw), 4),
                "walls": [
                    {
                        "id": w.id,
                        "name": SURFACE_NAMES[w.id],
                        "normal_xz": [round(w.normal[0], 6), round(w.normal[1], 6)],
                        "offset": round(w.offset, 6),
                    }
                    for w in self.walls
                ],
                "floor": {"id": GROUND_ID, "y": round(self.camera_height, 6), "style": self.floor_style},
            },
            "light": [round(c, 6) for c in self.light],
            "surfaces": {str(k): v for k, v in SURFACE_NAMES.items()},
            "objects": [o.to_json() for o in self.objects],
        }


def _rng_for(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_STREAM_TAG, int(seed)]))


def _check_seed(scene_seed: int) -> int:
    seed = int(scene_seed)
    if seed < 0:
        raise ValueError(f"scene seed must be >= 0, got {scene_seed}")
    return seed


@lru_cache(maxsize=256)
def _layout(seed: int) -> _Layout:
    rng = _rng_for(seed)
    u = rng.uniform

    hfov = float(u(52.0, 75.0))
    fy_ratio = float(u(0.98, 1.02))
    cx_shift = float(u(-0.02, 0.02))
    cy_shift = float(u(-0.02, 0.02))
    h_cam = float(u(1.1, 1.8))
    room_yaw = math.radians(float(u(-18.0, 18.0)))
    left = -float(u(2.6, 5.5))
    right = float(u(2.6, 5.5))
    back = float(u(7.5, 13.0))
    front = -float(u(1.5, 3.0))

    c, s = math.cos(room_yaw), math.sin(room_yaw)
    ra = (c, -s)  # room right axis in camera (X, Z)
    fb = (s, c)  # room forward axis
    walls = (
        _Wall(BACK_WALL_ID, fb, back, ra),
        _Wall(LEFT_WALL_ID, (-ra[0], -ra[1]), -left, (-fb[0], -fb[1])),
        _Wall(RIGHT_WALL_ID, ra, right, fb),
        _Wall(FRONT_WALL_ID, (-fb[0], -fb[1]), -front, (-ra[0], -ra[1])),
    )

    lx = float(u(-0.8, 0.8))
    lz = float(u(-0.9, -0.25))
    lnorm = math.sqrt(lx * lx + 1.0 + lz * lz)
    light = (lx / lnorm, -1.0 / lnorm, lz / lnorm)
    ambient = float(u(0.32, 0.45))

    # Objects: boxes and spheres on the floor, inside the room, inside the horizontal
    # field of view, with footprints that do not overlap.
    n_boxes = int(rng.integers(2, 5))
    n_spheres = int(rng.integers(1, 4))
    kinds = ["box"] * n_boxes + ["sphere"] * n_spheres
    rng.shuffle(kinds)
    tan_half = math.tan(math.radians(hfov) / 2.0)
    # roughly the nearest distance at which the foot of an object stays inside a 4:3 frame
    z_near = max(2.4, 0.95 * h_cam / (0.75 * tan_half))
    placed: list[SceneObject] = []
    for kind in kinds:
        if kind == "box":
            dims = (float(u(0.35, 1.3)), float(u(0.3, 1.5)), float(u(0.35, 1.3)))
            yaw = float(u(-45.0, 45.0))
            radius = None
            rb = 0.5 * math.hypot(dims[0], dims[2])
            half_h = dims[1] / 2.0
        else:
            r = float(u(0.2, 0.65))
            dims = (2 * r, 2 * r, 2 * r)
            yaw = 0.0
            radius = r
            rb = r
            half_h = r
        photo = _PHOTO_FILES[int(rng.integers(len(_PHOTO_FILES)))]
        for _ in range(60):
            a = float(u(left, right))
            b = z_near + (back - z_near) * float(u(0.0, 1.0)) ** 1.4  # favour nearer spots
            X = a * ra[0] + b * fb[0]
            Z = a * ra[1] + b * fb[1]
            if Z - rb < z_near * 0.9 or abs(X) + rb > 0.9 * Z * tan_half:
                continue
            if a - rb < left + 0.15 or a + rb > right - 0.15 or b + rb > back - 0.15:
                continue
            if any(
                math.hypot(X - o.center[0], Z - o.center[2]) < rb + o.footprint_radius + 0.25
                or _blocks((o.center[0], o.center[2]), o.footprint_radius, (X, Z))
                or _blocks((X, Z), rb, (o.center[0], o.center[2]))
                for o in placed
            ):
                continue
            placed.append(
                SceneObject(
                    id=len(placed) + 1,
                    kind=kind,
                    center=(X, h_cam - half_h, Z),
                    size=dims,
                    yaw_deg=yaw,
                    radius=radius,
                    texture=photo,
                )
            )
            break

    floor_style = str(rng.choice(["tiles", "planks", "grain"]))
    floor_grain = str(rng.choice(list(_GREY_FILES)))
    floor_tint = _random_tint(rng, 0.45, 0.85)
    floor_scale = float(u(1.2, 3.0))
    variation_table = tuple(float(x) for x in u(0.75, 1.15, size=64))
    rug = None
    if rng.random() < 0.6:
        ra0 = float(u(left + 0.3, 0.0))
        rb0 = float(u(z_near, 0.6 * back))
        rug = _Rect(
            ra0, rb0, ra0 + float(u(1.2, 2.6)), rb0 + float(u(1.0, 2.5)),
            _PHOTO_FILES[int(rng.integers(len(_PHOTO_FILES)))], frame=0.08,
        )

    wall_style = str(rng.choice(["brick", "plaster"]))
    wall_tints = tuple(_random_tint(rng, 0.55, 0.95) for _ in walls)
    posters = []
    for wall in walls[:3]:
        k = int(rng.integers(1, 4)) if wall.id == BACK_WALL_ID else int(rng.integers(0, 2))
        if wall.id == BACK_WALL_ID:
            lo, hi = left, right
        else:
            lo, hi = 0.5, back  # along the side walls, counted from the camera's plane
        span = (hi - lo) / max(k, 1)
        for i in range(k):
            w = float(u(0.8, min(2.2, 0.8 * span)))
            s0 = lo + i * span + float(u(0.0, span - w))
            top = h_cam - float(u(2.0, 2.8))
            hgt = float(u(0.6, 1.3))
            if wall.id == LEFT_WALL_ID:  # tangent runs backwards along this wall
                s0 = -(s0 + w)
            posters.append(
                (wall.id, _Rect(s0, top, s0 + w, top + hgt,
                                _PHOTO_FILES[int(rng.integers(len(_PHOTO_FILES)))], frame=0.05))
            )

    box_tops = tuple(_random_tint(rng, 0.5, 0.9) for _ in placed)
    sphere_styles = tuple(str(rng.choice(["photo", "stripes", "checker"])) for _ in placed)
    sphere_colours = tuple(
        tuple(_random_tint(rng, 0.35, 1.0, sat=0.9) for _ in range(4)) for _ in placed
    )

    return _Layout(
        seed=seed,
        hfov_deg=hfov,
        fy_ratio=fy_ratio,
        cx_shift=cx_shift,
        cy_shift=cy_shift,
        camera_height=h_cam,
        room_yaw=room_yaw,
        room=(left, right, back, front),
        walls=walls,
        light=light,
        ambient=ambient,
        objects=tuple(placed),
        floor_style=floor_style,
        floor_grain=floor_grain,
        floor_tint=floor_tint,
        floor_scale=floor_scale,
        variation_table=variation_table,
        rug=rug,
        wall_style=wall_style,
        wall_tints=wall_tints,
        posters=tuple(posters),
        box_tops=box_tops,
        sphere_styles=sphere_styles,
        sphere_colours=sphere_colours,
    )


def _blocks(centre: tuple[float, float], radius: float, target: tuple[float, float]) -> bool:
    """Whether a vertical cylinder (floor position ``centre``, ``radius``) crosses the sight
    line from the camera to ``target`` (floor positions X, Z). Placing objects so that no
    cylinder crosses another object's sight line keeps every object's centre in view."""
    tx, tz = target
    n2 = tx * tx + tz * tz
    k = (centre[0] * tx + centre[1] * tz) / n2
    if k <= 0.0 or k >= 1.0:
        return False
    dist = math.hypot(centre[0] - k * tx, centre[1] - k * tz)
    return dist < radius + 0.05


def _random_tint(rng: np.random.Generator, lo: float, hi: float, sat: float = 0.35) -> tuple[float, float, float]:
    base = float(rng.uniform(lo, hi))
    hue = rng.uniform(-sat, sat, size=3) * base
    return tuple(float(np.clip(base + h, 0.05, 1.0)) for h in hue)  # type: ignore[return-value]


# --------------------------------------------------------------------------- textures


@lru_cache(maxsize=1)
def _textures() -> dict[str, np.ndarray]:
    """Photos (HxWx3) and grey materials (HxW) as float32 in [0, 1], read once per process.

    A file missing from the scikit-image install is replaced by a procedural noise
    texture, so rendering never fails on a trimmed install. The files are decoded on two
    threads (Pillow lets go of the GIL while it decodes and resizes): 0.08 s instead of
    0.16 s, time a run with workers spends before it forks them."""
    from concurrent.futures import ThreadPoolExecutor

    try:
        from .builtin import builtin_data_dir

        root = builtin_data_dir()
    except Exception:  # noqa: BLE001  # pragma: no cover - scikit-image absent
        root = ""
    names = _PHOTO_FILES + _GREY_FILES
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ssrl-textures") as pool:
        arrays = list(pool.map(_read_texture, names, range(len(names)), [root] * len(names)))
    out = dict(zip(names, arrays))
    out["noise"] = _noise_texture(7)
    return out


def _read_texture(name: str, k: int, root: str) -> np.ndarray:
    """One texture of :func:`_textures` (the ``k``-th), read-only."""
    from PIL import Image

    grey = name in _GREY_FILES
    path = os.path.join(root, name)
    arr = None
    if root and os.path.isfile(path):
        try:
            with Image.open(path) as img:
                img = img.convert("L" if grey else "RGB")
                scale = _TEXTURE_MAX_SIDE / max(img.size)
                if scale < 1.0:
                    size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
                    img = img.resize(size, Image.Resampling.BOX)
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except OSError:
            arr = None
    if arr is None:
        noise = _noise_texture(1000 + k)
        arr = noise if grey else np.stack([noise, noise[::-1], noise.T], axis=-1)
    if grey:  # stretch contrast so the grain is visible once tinted
        lo, hi = np.percentile(arr, [2, 98])
        arr = np.clip((arr - lo) / max(hi - lo, 1e-3), 0.0, 1.0).astype(np.float32)
    arr.setflags(write=False)
    return arr


@lru_cache(maxsize=16)
def _noise_texture(seed: int, size: int = 256) -> np.ndarray:
    """Tileable smooth noise in [0, 1]: white noise filtered with a 1/f amplitude spectrum."""
    rng = np.random.default_rng([_STREAM_TAG, 99, seed])
    white = rng.standard_normal((size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = np.fft.rfft2(white) / f ** 1.3
    spec[0, 0] = 0.0
    n = np.fft.irfft2(spec, s=(size, size))
    n = (n - n.min()) / (n.max() - n.min())
    out = n.astype(np.float32)
    out.setflags(write=False)
    return out


def _texels(tex: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``tex[i, j]`` through a flat ``take`` (several times faster than fancy indexing)."""
    flat = i * tex.shape[1] + j
    if tex.ndim == 2:
        return np.take(tex.reshape(-1), flat)
    return np.take(tex.reshape(-1, tex.shape[2]), flat, axis=0)


def _mirror(k: np.ndarray, n: int) -> np.ndarray:
    """Texel index for mirrored repetition: 0..n-1, n-1..0, 0..n-1, ... (no seams)."""
    k = k % (2 * n)
    return np.where(k < n, k, 2 * n - 1 - k)


def _tile(tex: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Nearest-texel lookup repeating the texture (mirrored every other copy, so photos
    that do not tile show no seams); s, t in texture widths/heights."""
    h, w = tex.shape[:2]
    i = _mirror(np.floor(t * h).astype(np.intp), h)
    j = _mirror(np.floor(s * w).astype(np.intp), w)
    return _texels(tex, i, j)


def _stretch(tex: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Nearest-texel lookup with s, t in [0, 1] covering the texture once (clamped)."""
    h, w = tex.shape[:2]
    i = np.clip((t * h).astype(np.intp), 0, h - 1)
    j = np.clip((s * w).astype(np.intp), 0, w - 1)
    return _texels(tex, i, j)


# --------------------------------------------------------------------------- ray casting


def _box_axes(obj: SceneObject) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    th = math.radians(obj.yaw_deg)
    c, s = math.cos(th), math.sin(th)
    return np.array([c, 0.0, -s]), np.array([0.0, 1.0, 0.0]), np.array([s, 0.0, c])


def _nonzero(d: Any) -> Any:
    """Replace exact zeros by a tiny value so slab divisions never produce 0/0."""
    if np.isscalar(d):
        return d if d != 0 else 1e-30
    return np.where(d == 0, 1e-30, d)


def _hit_box(obj: SceneObject, o: tuple, d: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Slab test against a box turned about Y. ``o`` and ``d`` are (x, y, z) components,
    broadcastable arrays or scalars. Returns (t_near, t_far); the ray misses where
    t_near > t_far."""
    c = obj.center
    rel = (o[0] - c[0], o[1] - c[1], o[2] - c[2])
    t_near: Any = -np.inf
    t_far: Any = np.inf
    for axis, ext in zip(_box_axes(obj), obj.size):
        ol = axis[0] * rel[0] + axis[1] * rel[1] + axis[2] * rel[2]
        dl = _nonzero(axis[0] * d[0] + axis[1] * d[1] + axis[2] * d[2])
        inv = 1.0 / dl
        t1 = (-0.5 * ext - ol) * inv
        t2 = (0.5 * ext - ol) * inv
        t_near = np.maximum(t_near, np.minimum(t1, t2))
        t_far = np.minimum(t_far, np.maximum(t1, t2))
    return t_near, t_far


def _hit_sphere(obj: SceneObject, o: tuple, d: tuple) -> tuple[np.ndarray, np.ndarray]:
    c = obj.center
    rel = (o[0] - c[0], o[1] - c[1], o[2] - c[2])
    a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    b = rel[0] * d[0] + rel[1] * d[1] + rel[2] * d[2]
    cc = rel[0] * rel[0] + rel[1] * rel[1] + rel[2] * rel[2] - obj.radius * obj.radius
    disc = b * b - a * cc
    root = np.sqrt(np.maximum(disc, 0.0))
    miss = disc < 0
    t_near = np.where(miss, np.inf, (-b - root) / a)
    t_far = np.where(miss, -np.inf, (-b + root) / a)
    return t_near, t_far


def _hit(obj: SceneObject, o: tuple, d: tuple) -> tuple[np.ndarray, np.ndarray]:
    return _hit_box(obj, o, d) if obj.kind == "box" else _hit_sphere(obj, o, d)


def _corners(obj: SceneObject) -> np.ndarray:
    """The 8 corners of a box containing the object (camera frame)."""
    ax = _box_axes(obj)
    c = np.asarray(obj.center)
    out = []
    for sx in (-0.5, 0.5):
        for sy in (-0.5, 0.5):
            for sz in (-0.5, 0.5):
                out.append(c + sx * obj.size[0] * ax[0] + sy * obj.size[1] * ax[1] + sz * obj.size[2] * ax[2])
    return np.array(out)


def _screen_rect(points: np.ndarray, intr: tuple, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Pixel rectangle [u0, u1) x [v0, v1) that contains the projection of ``points``
    (all with Z > 0), with a pixel of margin; None if it is off screen. Points given in
    the camera frame; when some lie behind the camera the whole frame is returned, when
    all do (a convex object wholly behind a posed camera) None."""
    fx, fy, cx, cy = intr
    z = points[:, 2]
    if np.all(z <= 0.0):
        return None
    if np.any(z <= 1e-6):
        return (0, width, 0, height)
    us = fx * points[:, 0] / z + cx
    vs = fy * points[:, 1] / z + cy
    u0 = max(0, math.floor(us.min()) - 1)
    u1 = min(width, math.ceil(us.max()) + 2)
    v0 = max(0, math.floor(vs.min()) - 1)
    v1 = min(height, math.ceil(vs.max()) + 2)
    if u0 >= u1 or v0 >= v1:
        return None
    return (u0, u1, v0, v1)


@dataclass
class _Trace:
    t: np.ndarray  # HxW float64, ray parameter for d = ((u-cx)/fx, (v-cy)/fy, 1), = depth Z
    ids: np.ndarray  # HxW int16
    dx: np.ndarray  # W
    dy: np.ndarray  # H
    intr: tuple[float, float, float, float]
    pose: Pose | None = None
    """None for the default camera (camera frame = scene frame)."""
    dirs: tuple = ()
    """Scene-frame ray directions (x, y, z), each broadcastable to HxW (see :func:`_rays`)."""

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return points if self.pose is None else self.pose.to_camera(points)


def _rays(pose: Pose | None, dx: np.ndarray, dy: np.ndarray) -> tuple:
    """Scene-frame directions of the rays ``(dx[u], dy[v], 1)`` of a camera at ``pose``,
    as three arrays broadcastable to HxW. A level camera (no pitch) keeps them separable:
    x and z depend on the column only, y on the row only, so walls are traced per column
    and the floor per row. The default camera's are the camera-frame rays themselves (z a
    plain 1.0), which keeps its arithmetic, and so its pixels, exactly as they always were."""
    if pose is None:
        return dx[None, :], dy[:, None], 1.0
    cy, sy = math.cos(math.radians(pose.yaw_deg)), math.sin(math.radians(pose.yaw_deg))
    if pose.pitch_deg == 0.0:
        return (cy * dx + sy)[None, :], dy[:, None], (cy - sy * dx)[None, :]
    cp, sp = math.cos(math.radians(pose.pitch_deg)), math.sin(math.radians(pose.pitch_deg))
    ry = cp * dy[:, None] - sp + 0.0 * dx[None, :]  # R_pitch @ (dx, dy, 1)
    rz = sp * dy[:, None] + cp + 0.0 * dx[None, :]
    rx = dx[None, :] + 0.0 * dy[:, None]
    return cy * rx + sy * rz, ry, cy * rz - sy * rx  # then R_yaw


def _cut(a: Any, v0: int, v1: int, u0: int, u1: int) -> Any:
    """The [v0:v1, u0:u1] window of a direction array broadcastable to HxW."""
    if np.isscalar(a):
        return a
    rows = slice(v0, v1) if a.shape[0] > 1 else slice(None)
    cols = slice(u0, u1) if a.shape[1] > 1 else slice(None)
    return a[rows, cols]


def _trace(lay: _Layout, width: int, height: int, pose: Pose | None = None) -> _Trace:
    intr = lay.intrinsics(width, height)
    fx, fy, cx, cy = intr
    dx = (np.arange(width, dtype=np.float64) - cx) / fx
    dy = (np.arange(height, dtype=np.float64) - cy) / fy
    if pose is not None and pose.is_default:
        pose = None
    rx, ry, rz = dirs = _rays(pose, dx, dy)
    ox, oy, oz = (0.0, 0.0, 0.0) if pose is None else (pose.x, pose.y, pose.z)

    # Walls are vertical, so for a level camera their hit distance depends on the column
    # only; the floor's on the row only. The room is closed, so every ray leaves it
    # through some wall (a pitched camera's rays too: the pitch is bounded).
    t_wall = np.full(np.broadcast_shapes(np.shape(rx), np.shape(rz)), np.inf)
    wall_id = np.zeros(t_wall.shape, dtype=np.int16)
    for wall in lay.walls:
        den = wall.normal[0] * rx + wall.normal[1] * rz
        offset = wall.offset if pose is None else wall.offset - (wall.normal[0] * ox + wall.normal[1] * oz)
        with np.errstate(divide="ignore"):
            tw = np.where(den > 1e-12, offset / np.where(den > 1e-12, den, 1.0), np.inf)
        closer = tw < t_wall
        t_wall[closer] = tw[closer]
        wall_id[closer] = wall.id
    t_floor = np.full(np.shape(ry), np.inf)
    down = ry > 1e-12
    t_floor[down] = (lay.camera_height - oy) / ry[down]
    floor_first = t_floor <= t_wall
    t = np.where(floor_first, t_floor, t_wall)
    ids = np.where(floor_first, np.int16(GROUND_ID), wall_id).astype(np.int16)

    tmp = _Trace(t=t, ids=ids, dx=dx, dy=dy, intr=intr, pose=pose, dirs=dirs)
    for obj in lay.objects:
        rect = _screen_rect(tmp.to_camera(_corners(obj)), intr, width, height)
        if rect is None:
            continue
        u0, u1, v0, v1 = rect
        d = (_cut(rx, v0, v1, u0, u1), _cut(ry, v0, v1, u0, u1), _cut(rz, v0, v1, u0, u1))
        t_near, t_far = _hit(obj, (ox, oy, oz), d)
        hit = (t_near <= t_far) & (t_near > _HIT_EPS)
        sub_t = t[v0:v1, u0:u1]
        closer = hit & (t_near < sub_t)
        sub_t[closer] = t_near[closer]
        ids[v0:v1, u0:u1][closer] = obj.id
    return tmp


def _points(lay: _Layout, tr: _Trace) -> tuple[np.ndarray, np.ndarray]:
    """3D point of every pixel (float32), from the ray parameter of its hit, in the camera
    frame, P = t * ((u - cx) / fx, (v - cy) / fy, 1), and in the scene frame (the same
    array for the default camera). Floor points sit exactly on the floor plane."""
    h, w = tr.t.shape
    t32 = tr.t.astype(np.float32)
    pts = np.empty((h, w, 3), dtype=np.float32)
    np.multiply(t32, tr.dx.astype(np.float32)[None, :], out=pts[..., 0])
    np.multiply(t32, tr.dy.astype(np.float32)[:, None], out=pts[..., 1])
    pts[..., 2] = t32
    floor = tr.ids == GROUND_ID
    if tr.pose is None:
        pts[..., 1][floor] = lay.camera_height  # exact on the floor plane
        return pts, pts
    scene = np.empty((h, w, 3), dtype=np.float32)
    for k, (o, d) in enumerate(zip(tr.pose.position, tr.dirs)):
        scene[..., k] = o + tr.t * d  # float64 sum, rounded once
    scene[..., 1][floor] = lay.camera_height
    return pts, scene


def _floor_shadow(lay: _Layout, tr: _Trace, pts: np.ndarray) -> np.ndarray:
    """Boolean HxW: floor pixels from which the light is blocked by an object."""
    h, w = tr.t.shape
    shadow = np.zeros((h, w), dtype=bool)
    light = lay.light
    y0 = lay.camera_height
    for obj in lay.objects:
        corners = _corners(obj)
        # where each corner's shadow lands on the floor: corner - s * light, Y = y0
        s = (corners[:, 1] - y0) / light[1]
        cast = corners - s[:, None] * np.asarray(light)[None, :]
        base = corners.copy()
        base[:, 1] = y0
        rect = _screen_rect(tr.to_camera(np.vstack([base, cast])), tr.intr, w, h)
        if rect is None:
            continue
        u0, u1, v0, v1 = rect
        on_floor = tr.ids[v0:v1, u0:u1] == GROUND_ID
        if not on_floor.any():
            continue
        p = pts[v0:v1, u0:u1][on_floor]
        t_near, t_far = _hit(obj, (p[:, 0], p[:, 1], p[:, 2]), light)
        blocked = (t_near <= t_far) & (t_far > 1e-4)
        sub = shadow[v0:v1, u0:u1]
        sub[on_floor] |= blocked
    return shadow


def _shade_surfaces(
    lay: _Layout, tr: _Trace, pts: np.ndarray, colour: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Normals (HxWx3 float32) and, if ``colour``, albedo (HxWx3 float32) per pixel."""
    h, w = tr.t.shape
    ids = tr.ids.ravel()
    p_all = pts.reshape(-1, 3)
    tex = _textures() if colour else {}
    ra, fb = lay.room_axes()
    walls = {wl.id: (k, wl) for k, wl in enumerate(lay.walls)}
    objects = {o.id: (k, o) for k, o in enumerate(lay.objects)}

    # Floor and walls have one normal each: gather them from a table indexed by id, then
    # overwrite the object pixels.
    shift = -min(SURFACE_NAMES)
    table = np.zeros((shift + len(lay.objects) + 1, 3), dtype=np.float32)
    table[GROUND_ID + shift] = (0.0, -1.0, 0.0)
    for wall in lay.walls:
        table[wall.id + shift] = (-wall.normal[0], 0.0, -wall.normal[1])
    normals = np.take(table, ids.astype(np.intp) + shift, axis=0)
    albedo = np.empty((h * w, 3), dtype=np.float32) if colour else None

    for idx in range(len(table)):
        sid = idx - shift
        if not colour and sid < 0:
            continue
        sel = np.flatnonzero(ids == sid)
        if not len(sel):
            continue
        p = np.take(p_all, sel, axis=0)
        if sid == GROUND_ID:
            a = p[:, 0] * np.float32(ra[0]) + p[:, 2] * np.float32(ra[1])
            b = p[:, 0] * np.float32(fb[0]) + p[:, 2] * np.float32(fb[1])
            albedo[sel] = _floor_albedo(lay, tex, a, b)
        elif sid in walls:
            k, wall = walls[sid]
            along = p[:, 0] * np.float32(wall.tangent[0]) + p[:, 2] * np.float32(wall.tangent[1])
            albedo[sel] = _wall_albedo(lay, tex, k, wall, along, p[:, 1])
        else:
            k, obj = objects[sid]
            rel = p.astype(np.float64) - np.asarray(obj.center)
            if obj.kind == "sphere":
                nrm = rel / obj.radius
                nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
                normals[sel] = nrm
                if colour:
                    albedo[sel] = _sphere_albedo(lay, tex, k, obj, nrm)
            else:
                axes = _box_axes(obj)
                local = np.stack([rel @ ax for ax in axes], axis=1)
                half = 0.5 * np.asarray(obj.size)
                face = np.argmax(np.abs(local) / half, axis=1)
                sign = np.sign(local[np.arange(len(face)), face])
                normals[sel] = np.stack(axes)[face] * sign[:, None]
                if colour:
                    albedo[sel] = _box_albedo(lay, tex, k, obj, local / (2 * half) + 0.5, face, sign)
    return normals.reshape(h, w, 3), (albedo.reshape(h, w, 3) if colour else None)


def _photo_rect(tex: dict, col: np.ndarray, s: np.ndarray, t: np.ndarray, rect: _Rect) -> None:
    """Paint ``rect`` (framed photo) into ``col`` where the (s, t) coordinates fall in it."""
    inside = (s >= rect.s0) & (s < rect.s1) & (t >= rect.t0) & (t < rect.t1)
    if not inside.any():
        return
    si, ti = s[inside], t[inside]
    fs = (si - rect.s0) / (rect.s1 - rect.s0)
    ft = (ti - rect.t0) / (rect.t1 - rect.t0)
    out = _stretch(tex[rect.photo], fs, ft)
    if rect.frame > 0:
        edge = np.minimum(np.minimum(si - rect.s0, rect.s1 - si), np.minimum(ti - rect.t0, rect.t1 - ti))
        out = np.where((edge < rect.frame)[:, None], np.float32(0.12), out)
    col[inside] = out


def _floor_albedo(lay: _Layout, tex: dict, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    grain = _tile(tex[lay.floor_grain], a / lay.floor_scale, b / lay.floor_scale)
    tint = np.asarray(lay.floor_tint, dtype=np.float32)
    if lay.floor_style == "planks":
        plank = np.floor(a / 0.22).astype(np.int64)
        stagger = np.floor(b / 2.0 + 0.37 * plank).astype(np.int64)
        k = (plank * 7 + stagger * 13) % len(lay.variation_table)
        bright = np.asarray(lay.variation_table, dtype=np.float32)[k]
        streak = _tile(tex["noise"], a / 0.9, b / 7.0)
        shade = bright * (0.7 + 0.3 * streak) * (0.85 + 0.15 * grain)
        across = a / 0.22
        along = b / 2.0 + 0.37 * plank
        gap = (np.abs(across - np.round(across)) < 0.04) | (np.abs(along - np.round(along)) < 0.008)
        shade = np.where(gap, 0.35, shade)
    elif lay.floor_style == "tiles":
        checker = (np.floor(a / 0.8) + np.floor(b / 0.8)) % 2
        shade = (0.6 + 0.4 * grain) * (1.0 - 0.3 * checker)
        grout = (np.abs(a / 0.8 - np.round(a / 0.8)) < 0.02) | (np.abs(b / 0.8 - np.round(b / 0.8)) < 0.02)
        shade = np.where(grout, 0.3, shade)
    else:
        shade = 0.35 + 0.65 * grain
    col = (shade[:, None] * tint[None, :]).astype(np.float32)
    if lay.rug is not None:
        _photo_rect(tex, col, a, b, lay.rug)
    return col


def _wall_albedo(lay: _Layout, tex: dict, k: int, wall: _Wall, along: np.ndarray, y: np.ndarray) -> np.ndarray:
    tint = np.asarray(lay.wall_tints[k], dtype=np.float32)
    if lay.wall_style == "brick":
        # running bond: 24 x 9 cm courses, alternate rows shifted by half a brick
        row = np.floor(y / 0.09).astype(np.int64)
        x = along / 0.24 + 0.5 * (row % 2)
        col = np.floor(x).astype(np.int64)
        pick = (row * 31 + col * 17) % len(lay.variation_table)
        g = _tile(tex["gravel.png"], along / 1.5, y / 1.5)
        shade = np.asarray(lay.variation_table, dtype=np.float32)[pick] * (0.7 + 0.3 * g)
        mortar = (x - col < 0.04) | (y / 0.09 - row < 0.1)
        shade = np.where(mortar, 0.95, 0.75 * shade)
    else:
        g = _tile(tex["noise"], along / 3.0, y / 3.0)
        shade = 0.75 + 0.25 * g
    # a darker skirting board along the floor
    shade = np.where(y > lay.camera_height - 0.12, 0.4 * shade, shade)
    col = (shade[:, None] * tint[None, :]).astype(np.float32)
    for wid, rect in lay.posters:
        if wid == wall.id:
            _photo_rect(tex, col, along, y, rect)
    return col


def _box_albedo(
    lay: _Layout, tex: dict, k: int, obj: SceneObject, uvw: np.ndarray, face: np.ndarray, sign: np.ndarray
) -> np.ndarray:
    """``uvw``: the hit point in the box's own frame scaled to [0, 1]^3."""
    col = np.empty((len(face), 3), dtype=np.float32)
    side = face != 1
    # sides: the photo printed across the face (x faces use z, z faces use x)
    s = np.where(face == 0, uvw[:, 2], uvw[:, 0])
    s = np.where(sign < 0, s, 1.0 - s)
    photo = tex[obj.texture]
    col[side] = _stretch(photo, s[side], uvw[side, 1])
    top = ~side
    if top.any():
        g = _tile(tex["noise"], uvw[top, 0] * 0.7, uvw[top, 2] * 0.7)
        col[top] = (0.7 + 0.3 * g)[:, None] * np.asarray(lay.box_tops[k], dtype=np.float32)[None, :]
    # darken a thin band along the edges so the box outline reads clearly
    dist = np.ones(len(face))
    for ax in range(3):
        other = face != ax
        m = np.minimum(uvw[:, ax], 1.0 - uvw[:, ax]) * obj.size[ax]
        dist = np.where(other, np.minimum(dist, m), dist)
    col *= np.where(dist < 0.02, 0.45, 1.0)[:, None].astype(np.float32)
    return col


def _sphere_albedo(lay: _Layout, tex: dict, k: int, obj: SceneObject, nrm: np.ndarray) -> np.ndarray:
    lon = np.arctan2(nrm[:, 0], nrm[:, 2]) / (2 * np.pi) + 0.5
    lat = np.arcsin(np.clip(nrm[:, 1], -1.0, 1.0)) / np.pi + 0.5
    style = lay.sphere_styles[k]
    colours = np.asarray(lay.sphere_colours[k], dtype=np.float32)
    if style == "photo":
        return _tile(tex[obj.texture], lon * 2.0, lat).astype(np.float32)
    if style == "stripes":
        band = np.floor(lon * 8).astype(np.int64) % 4
        return colours[band]
    cell = (np.floor(lon * 12).astype(np.int64) + np.floor(lat * 6).astype(np.int64)) % 2
    return colours[cell * 2]


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class SceneGeometry:
    """The analytic ground truth of a rendered scene, pixel by pixel.

    ``points`` is computed from each pixel's ray and its analytic hit, not from the depth
    map; ``points[..., 2]`` equals the depth map up to float32 rounding. Points and normals
    are in the frame of the camera that rendered the view, which stands at ``pose`` in the
    scene frame (the default pose: both frames are one); :meth:`scene_points` gives the
    points in the scene frame, where the floor is the plane ``Y = camera_height``."""

    seed: int
    width: int
    height: int
    intrinsics: tuple[float, float, float, float]
    camera_height: float
    objects: tuple[SceneObject, ...]
    object_id: np.ndarray
    """HxW int16: object id (1..n) or surface id (negative, see ``SURFACE_NAMES``)."""
    points: np.ndarray
    """HxWx3 float32 camera-frame point seen by each pixel (metres)."""
    normals: np.ndarray
    """HxWx3 float32 unit surface normal at that point (facing the camera)."""
    surfaces: dict[int, str] = field(default_factory=lambda: dict(SURFACE_NAMES))
    pose: Pose = DEFAULT_POSE

    def scene_points(self) -> np.ndarray:
        """HxWx3 float32: ``points`` in the scene frame."""
        if self.pose.is_default:
            return self.points
        return self.pose.to_scene(self.points).astype(np.float32)

    def object(self, object_id: int) -> SceneObject:
        for o in self.objects:
            if o.id == object_id:
                return o
        raise KeyError(object_id)

    def project(self, xyz: Any) -> tuple[float, float]:
        """Image position (u, v) of a camera-frame point (Z > 0)."""
        fx, fy, cx, cy = self.intrinsics
        x, y, z = (float(c) for c in xyz)
        return (fx * x / z + cx, fy * y / z + cy)

    def ground_xz(self, u: int, v: int) -> tuple[float, float]:
        """Floor-plane coordinates (scene X, Z) of the point seen at pixel (u, v)."""
        p = self.points[v, u]
        if not self.pose.is_default:
            p = self.pose.to_scene(p)
        return (float(p[0]), float(p[2]))


def _scene(scene_seed: int, width: int, height: int, colour: bool, pose: Pose | None = None):
    seed = _check_seed(scene_seed)
    if width < 2 or height < 2:
        raise ValueError(f"image size must be at least 2x2, got {width}x{height}")
    lay = _layout(seed)
    if pose is not None and not pose.is_default:
        problem = pose_problem(seed, pose)
        if problem:
            raise ValueError(f"camera pose {pose.to_dict()} is not usable in scene {seed}: {problem}")
    tr = _trace(lay, int(width), int(height), pose)
    cam_pts, pts = _points(lay, tr)
    normals, albedo = _shade_surfaces(lay, tr, pts, colour)  # scene frame
    cam_normals = normals if tr.pose is None else (normals @ tr.pose.rotation().astype(np.float32))
    geom = SceneGeometry(
        seed=seed,
        width=int(width),
        height=int(height),
        intrinsics=tr.intr,
        camera_height=lay.camera_height,
        objects=lay.objects,
        object_id=tr.ids,
        points=cam_pts,
        normals=cam_normals,
        pose=pose if pose is not None else DEFAULT_POSE,
    )
    if not colour:
        return lay, tr, geom, None
    light = np.asarray(lay.light, dtype=np.float32)
    lambert = np.clip(normals @ light, 0.0, None)
    lambert[_floor_shadow(lay, tr, pts)] *= 0.25
    # a touch of haze with distance keeps far surfaces from looking pasted on
    haze = 1.0 - np.exp(cam_pts[..., 2] * np.float32(-1.0 / 30.0))
    gain = (lay.ambient + (1.0 - lay.ambient) * 0.95 * lambert) * (1.0 - 0.5 * haze) * 255.0
    lit = albedo * gain[..., None]
    lit += (haze * np.float32(0.375 * 255.0))[..., None]
    np.clip(lit, 0.0, 255.0, out=lit)
    rgb = np.rint(lit, out=lit).astype(np.uint8)
    return lay, tr, geom, rgb


def scene_geometry(scene_seed: int, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT,
                   pose: Pose | None = None) -> SceneGeometry:
    """Ground truth of scene ``scene_seed`` at the given size (no shading is computed), seen
    from the default camera or from ``pose``."""
    return _scene(scene_seed, width, height, colour=False, pose=pose)[2]


def pose_problem(scene_seed: int, pose: Pose, margin: float = CAMERA_MARGIN) -> str | None:
    """Why a camera cannot stand at ``pose`` in scene ``scene_seed`` (None: it can).

    ``pitch_out_of_range`` (beyond :data:`MAX_PITCH_DEG`), ``too_close_to_floor`` (less than
    ``margin`` above it), ``too_high`` (more than :data:`MAX_CAMERA_HEIGHT` above it),
    ``outside_room`` (beyond a wall), ``too_close_to_wall`` (inside, nearer than
    ``margin``), ``inside_object`` (within ``margin`` of an object's footprint, at any
    height: a camera never stands over an object). The default pose is always usable."""
    if pose.is_default:
        return None
    lay = _layout(_check_seed(scene_seed))
    if abs(pose.pitch_deg) > MAX_PITCH_DEG:
        return "pitch_out_of_range"
    above_floor = lay.camera_height - pose.y
    if above_floor < margin:
        return "too_close_to_floor"
    if above_floor > MAX_CAMERA_HEIGHT:
        return "too_high"
    inside = [wall.offset - (wall.normal[0] * pose.x + wall.normal[1] * pose.z) for wall in lay.walls]
    if min(inside) <= 0.0:
        return "outside_room"
    if min(inside) < margin:
        return "too_close_to_wall"
    for obj in lay.objects:
        if math.hypot(pose.x - obj.center[0], pose.z - obj.center[2]) < obj.footprint_radius + margin:
            return "inside_object"
    return None


@dataclass(frozen=True)
class View:
    """One rendered view of a scene: what :func:`render_view` returns. The arrays are
    read-only; ``depth`` is the posed camera's Z (valid everywhere: the room is closed)."""

    seed: int
    width: int
    height: int
    pose: Pose
    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: tuple[float, float, float, float]
    geometry: SceneGeometry | None = None

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


#: Posed views a process keeps (:func:`render_view`): a task that checks a view and then
#: draws it asks for it twice.
VIEW_CACHE_ENTRIES = 4
_VIEW_CACHE: OrderedDict = OrderedDict()


def render_view(scene_seed: int, size: tuple[int, int] = (DEFAULT_WIDTH, DEFAULT_HEIGHT),
                pose: Pose | dict | None = None, geometry: bool = False) -> View:
    """Render scene ``scene_seed`` at ``size`` = (width, height) from a camera at ``pose``
    (a :class:`Pose`, its :meth:`Pose.to_dict` form, or None for the default camera, which
    gives exactly :func:`render_scene`'s pixels and depth). ``geometry`` adds the view's
    :class:`SceneGeometry`. ValueError (naming the reason, see :func:`pose_problem`) for a
    pose the camera cannot take."""
    seed = _check_seed(scene_seed)
    width, height = (int(v) for v in size)
    if isinstance(pose, dict):
        pose = Pose.from_dict(pose)
    pose = pose if pose is not None else DEFAULT_POSE
    key = (seed, width, height, pose)
    if not geometry:
        with _RENDER_CACHE_LOCK:
            hit = _VIEW_CACHE.get(key)
            if hit is not None:
                _VIEW_CACHE.move_to_end(key)
                return hit
        if pose.is_default:
            rgb, depth, _mask, intr = _rendered(seed, width, height)
            view = View(seed, width, height, pose, rgb, depth, intr)
            return view
    _lay, tr, geom, rgb = _scene(seed, width, height, colour=True, pose=pose)
    depth = tr.t.astype(np.float32)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    for arr in (rgb, depth):
        arr.setflags(write=False)
    view = View(seed, width, height, pose, rgb, depth, tuple(float(x) for x in tr.intr),  # type: ignore[arg-type]
                geom if geometry else None)
    if not geometry:
        with _RENDER_CACHE_LOCK:
            _VIEW_CACHE[key] = view
            while len(_VIEW_CACHE) > VIEW_CACHE_ENTRIES:
                _VIEW_CACHE.popitem(last=False)
    return view


def scene_description(scene_seed: int, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT) -> dict[str, Any]:
    """JSON-able description of the scene (camera, room, light, objects)."""
    return _layout(_check_seed(scene_seed)).to_json(int(width), int(height))


def render_scene_with_geometry(
    scene_seed: int, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT
) -> tuple[Item, SceneGeometry]:
    """:func:`render_scene` and :func:`scene_geometry` from one ray cast."""
    lay, tr, geom, rgb = _scene(scene_seed, width, height, colour=True)
    depth = tr.t.astype(np.float32)
    mask = np.isfinite(depth) & (depth > 0)
    depth[~mask] = np.nan  # never happens in a closed room; kept for the contract
    for arr in (rgb, depth, mask):  # read-only, like the file-based loaders' arrays
        arr.setflags(write=False)
    item = Item(
        id=f"procedural/scene-{geom.seed:05d}",
        rgb=rgb,
        path=f"procedural:{geom.seed}",
        depth=depth,
        mask=mask,
        intrinsics=tuple(float(x) for x in tr.intr),  # type: ignore[arg-type]
        depth_kind="metric",
        depth_path=None,
        info={"scene": lay.to_json(int(width), int(height))},
    )
    return item, geom


def render_scene(scene_seed: int, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT) -> Item:
    """Render scene ``scene_seed``: RGB, exact metric depth (Z, float32), an all-True mask,
    intrinsics, and ``info["scene"]`` describing the camera, room and objects."""
    return render_scene_with_geometry(scene_seed, width, height)[0]


def procedural_refs(n: int, seed: int = 0) -> list[SourceRef]:
    """``n`` procedural scenes numbered ``seed, seed + 1, ...`` as source refs."""
    start = _check_seed(seed)
    return [
        SourceRef(id=f"procedural/scene-{k:05d}", path=f"procedural:{k}", kind="procedural")
        for k in range(start, start + int(n))
    ]


_PATH_RE = re.compile(r"^procedural:(\d+)(?::(\d+)x(\d+))?$")


def parse_procedural_path(path: str) -> tuple[int, int, int]:
    """``procedural:SEED`` or ``procedural:SEED:WIDTHxHEIGHT`` -> (seed, width, height)."""
    m = _PATH_RE.match(path.strip())
    if not m:
        raise ValueError(f"not a procedural scene path: {path!r}")
    seed = int(m.group(1))
    if m.group(2):
        return seed, int(m.group(2)), int(m.group(3))
    return seed, DEFAULT_WIDTH, DEFAULT_HEIGHT


def load_procedural_item(ref: SourceRef, options: Any = None) -> Item:
    """Render the scene a ``procedural`` ref names. ``options`` is a ``LoadOptions``: a
    size above ``resize_max_pixels`` is rendered directly at the reduced size (intrinsics
    follow), and a size whose shorter side is below ``min_side`` is a ``too_small`` skip."""
    try:
        seed, width, height = parse_procedural_path(ref.path)
    except ValueError as exc:
        raise SourceSkip("bad_procedural_path", ref.path, str(exc)) from exc
    info: dict[str, Any] = {}
    limit = getattr(options, "resize_max_pixels", None)
    if limit and width * height > limit:
        scale = math.sqrt(limit / float(width * height))
        new_w, new_h = max(1, int(width * scale)), max(1, int(height * scale))
        info["resize"] = {"from": [width, height], "to": [new_w, new_h], "scale": [new_w / width, new_h / height],
                          "how": "rendered at the reduced size"}
        width, height = new_w, new_h
    min_side = getattr(options, "min_side", 0) or 0
    if min(width, height) < min_side:
        raise SourceSkip("too_small", ref.path, f"{width}x{height}, shorter side below {min_side} px")
    rgb, depth, mask, intrinsics = _rendered(seed, width, height)
    # a fresh Item (and info) per call around the shared read-only arrays: what a caller
    # does to the item it got never reaches the cache
    item = Item(
        id=ref.id,
        rgb=rgb,
        path=f"procedural:{seed}",
        depth=depth,
        mask=mask,
        intrinsics=intrinsics,
        depth_kind="metric",
        depth_path=None,
        info={"scene": _layout(seed).to_json(width, height)},
    )
    item.info.update(info)
    return item


def warm_up() -> None:
    """Read the textures every scene is shaded with (once per process)."""
    _textures()


def cool_down() -> None:
    """Drop the textures and rendered scenes this process holds (about 40 MB): for a
    process that will render no scene itself, such as the parent of worker processes
    once they are forked with their own copies. Rendering later reads them again."""
    _textures.cache_clear()
    _noise_texture.cache_clear()
    with _RENDER_CACHE_LOCK:
        _RENDER_CACHE.clear()
        _VIEW_CACHE.clear()


#: Bytes of rendered scenes a process keeps (:func:`_rendered`). A run deals the units of
#: one source one after another, so a few scenes are enough for a worker to render each
#: scene about once instead of once per unit (8 samples); 24 MB holds about 10 scenes at 640x480
#: (64 MB cost each worker ~35 MB more peak memory for no measured speed).
RENDER_CACHE_BYTES = 24 * 1024 * 1024
_RENDER_CACHE: OrderedDict = OrderedDict()
_RENDER_CACHE_LOCK = threading.Lock()


def _rendered(seed: int, width: int, height: int):
    """(rgb, depth, mask, intrinsics) of :func:`render_scene` at this size, from a small
    per-process LRU cache. A scene is a pure function of (seed, width, height) and the
    arrays are read-only, so a hit gives exactly what a fresh render would."""
    key = (int(seed), int(width), int(height))
    with _RENDER_CACHE_LOCK:
        hit = _RENDER_CACHE.get(key)
        if hit is not None:
            _RENDER_CACHE.move_to_end(key)
            return hit[0]
    item = render_scene(seed, width, height)
    value = (item.rgb, item.depth, item.mask, item.intrinsics)
    size = sum(a.nbytes for a in value[:3])
    if size <= RENDER_CACHE_BYTES:
        with _RENDER_CACHE_LOCK:
            _RENDER_CACHE[key] = (value, size)
            _RENDER_CACHE.move_to_end(key)
            total = sum(v[1] for v in _RENDER_CACHE.values())
            while total > RENDER_CACHE_BYTES:
                _, (_, dropped) = _RENDER_CACHE.popitem(last=False)
                total -= dropped
    return value


__all__ = [
    "BACK_WALL_ID",
    "CAMERA_MARGIN",
    "DEFAULT_HEIGHT",
    "DEFAULT_POSE",
    "DEFAULT_WIDTH",
    "FRONT_WALL_ID",
    "GROUND_ID",
    "LEFT_WALL_ID",
    "MAX_CAMERA_HEIGHT",
    "MAX_PITCH_DEG",
    "RIGHT_WALL_ID",
    "SURFACE_NAMES",
    "Pose",
    "SceneGeometry",
    "SceneObject",
    "View",
    "cool_down",
    "load_procedural_item",
    "parse_procedural_path",
    "pose_problem",
    "procedural_refs",
    "render_scene",
    "render_scene_with_geometry",
    "render_view",
    "scene_description",
    "scene_geometry",
    "warm_up",
]
