"""A procedural world with exact depth: the default data of the book.

Two presets:

- ``indoor``: an NYUv2-like room (floor, walls, ceiling) with furniture (tables on thin
  legs, cabinets, sofas, chairs, lamps on thin poles, balls, bins) and a handheld camera that
  drifts, pans and tilts; depths 0.5–10 m.
- ``driving``: a KITTI-like street (road, sidewalks, buildings with windows, parked cars,
  poles, trees, sky) and a car-mounted camera driving forward with turns; depth valid up to
  80 m (beyond: 0, as in KITTI's ground truth).

Everything is deterministic from ``seed``. Conventions: OpenCV camera (x right, y down,
z forward), K in pixels with pixel (col, row) ↔ image point (u, v) = (col, row) (see
:mod:`bore_depth_lite.data.render`), poses camera-to-world, world z up, metres.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from .render import BOX, CYLINDER, PLANE, ROOM, SPHERE, Scene, SceneBuilder, cast_rays, depth_boundaries, semantic_map, shade

CLASS_NAMES = ["sky", "road", "sidewalk", "building", "wall", "floor", "ceiling", "furniture",
               "car", "pole", "vegetation", "object"]
C = {name: i for i, name in enumerate(CLASS_NAMES)}

PRESETS = {
    # focal length as a fraction of the image width (NYUv2: 518.86/640, KITTI: 721.54/1242)
    "indoor": dict(focal_per_width=0.81, max_depth=10.0),
    "driving": dict(focal_per_width=0.58, max_depth=80.0),
}

_OPTIONS = {"pseudo_depth", "exposure_jitter", "noise_std", "speed", "max_depth", "focal_per_width",
            "boundary_threshold", "poses"}


@dataclass
class SyntheticSequence:
    """One rendered sequence (N frames). Arrays are numpy.

    rgb (N,H,W,3) uint8; depth (N,H,W) float32 z-depth in metres, 0 = no valid surface
    (sky or beyond ``max_depth``); semantic (N,H,W) uint8 indices into ``class_names``;
    boundary (N,H,W) bool exact occlusion edges (near side); K (3,3) float64; poses (N,4,4)
    float64 camera-to-world; instance (N,H,W) int32 primitive index (-1 = sky);
    pseudo_depth (N,H,W) float32 or None (*simulated*: a monotone distortion of depth).
    """

    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    boundary: np.ndarray
    K: np.ndarray
    poses: np.ndarray
    class_names: list[str]
    instance: np.ndarray
    scene: Scene
    preset: str
    seed: int
    max_depth: float
    pseudo_depth: np.ndarray | None = None
    exposure: np.ndarray = field(default_factory=lambda: np.ones(0))

    def __len__(self) -> int:
        return len(self.rgb)


def look_pose(position, yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world (4,4) for an OpenCV camera at ``position`` looking along heading
    ``yaw`` (radians from world +x towards +y), tilted up by ``pitch``, rolled by ``roll``."""
    fwd = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    cr, sr = np.cos(roll), np.sin(roll)
    right, down = cr * right + sr * down, -sr * right + cr * down
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, fwd, position
    return pose


def intrinsics(height: int, width: int, focal_per_width: float) -> np.ndarray:
    """Square-pixel K with the principal point at the image centre, (W-1)/2, (H-1)/2."""
    f = focal_per_width * width
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _smooth_walk(rng: np.random.Generator, n: int, amplitude: float, period: tuple[float, float],
                 time_scale: float = 1.0) -> np.ndarray:
    """Sum of three random sinusoids sampled at times 0, s, 2s, ... (s = ``time_scale``):
    smooth and bounded by ``amplitude``; a larger time scale moves faster along the same path."""
    s = np.arange(n, dtype=float) * time_scale
    out = np.zeros(n)
    for _ in range(3):
        out += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * s / rng.uniform(*period) + rng.uniform(0, 2 * np.pi))
    return amplitude * out / 3.0


# ----------------------------------------------------------------------------- indoor
def indoor_world(rng: np.random.Generator, num_frames: int, speed: float = 1.0):
    """Room + furniture + handheld trajectory. Returns (Scene, poses (N,4,4))."""
    lx, ly, lz = rng.uniform(4.5, 6.5), rng.uniform(4.0, 6.0), rng.uniform(2.5, 3.0)
    n = num_frames
    # ``speed`` runs along the same bounded path faster (the camera stays >= 1.4 m from the
    # walls); it scales translation only, so more speed means more parallax, not more spin
    x = _smooth_walk(rng, n, min(0.9, lx / 2 - 1.4), (60, 200), speed)
    y = _smooth_walk(rng, n, min(0.9, ly / 2 - 1.4), (60, 200), speed)
    z = rng.uniform(1.2, 1.6) + _smooth_walk(rng, n, 0.08, (20, 60), speed)
    yaw = rng.uniform(-np.pi, np.pi) + _smooth_walk(rng, n, 1.2, (80, 250))
    pitch = -0.3 + _smooth_walk(rng, n, 0.15, (30, 90))
    roll = _smooth_walk(rng, n, 0.04, (20, 60))
    poses = np.stack([look_pose((x[i], y[i], z[i]), yaw[i], pitch[i], roll[i]) for i in range(n)])
    cam_xy = poses[:, :2, 3]

    b = SceneBuilder(rng)
    wall_colour = rng.choice([(0.85, 0.8, 0.7), (0.7, 0.78, 0.85), (0.85, 0.75, 0.75), (0.78, 0.82, 0.7)])
    b.add(ROOM, (0, 0, lz / 2), (lx / 2, ly / 2, lz / 2), C["wall"], wall_colour, texture_scale=0.6)

    def clear(cx, cy, rx, ry, margin=0.45):
        return np.all((np.abs(cam_xy[:, 0] - cx) > rx + margin) | (np.abs(cam_xy[:, 1] - cy) > ry + margin))

    def spot(rx, ry):
        for _ in range(50):
            cx, cy = rng.uniform(-lx / 2 + rx + 0.05, lx / 2 - rx - 0.05), rng.uniform(-ly / 2 + ry + 0.05, ly / 2 - ry - 0.05)
            if clear(cx, cy, max(rx, ry), max(rx, ry)):
                return cx, cy
        return None

    furniture_colours = [(0.55, 0.35, 0.2), (0.3, 0.3, 0.35), (0.7, 0.6, 0.45), (0.25, 0.4, 0.55), (0.6, 0.25, 0.2)]
    for _ in range(int(rng.integers(14, 22))):
        kind = rng.choice(["table", "cabinet", "cabinet", "sofa", "chair", "lamp", "ball", "bin", "picture"])
        col = furniture_colours[int(rng.integers(len(furniture_colours)))]
        if kind == "table":
            w, d, hgt = rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.5), rng.uniform(0.7, 0.78)
            at = spot(w, d)
            if at is None:
                continue
            b.add(BOX, (at[0], at[1], hgt - 0.02), (w, d, 0.02), C["furniture"], col, texture_scale=0.3, pattern=2)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    b.add(CYLINDER, (at[0] + sx * (w - 0.05), at[1] + sy * (d - 0.05), (hgt - 0.04) / 2),
                          (0.025, 0.025, (hgt - 0.04) / 2), C["furniture"], col, texture_scale=0.1)
            b.add(BOX, (at[0] + rng.uniform(-0.2, 0.2), at[1], hgt + 0.1), (0.12, 0.09, 0.1), C["object"],
                  rng.uniform(0.2, 0.9, 3), texture_scale=0.1)
        elif kind == "cabinet":
            w, d, hgt = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.3), rng.uniform(0.8, 2.0)
            side = int(rng.integers(4))
            cx = [lx / 2 - d, -lx / 2 + d, rng.uniform(-lx / 2 + w, lx / 2 - w), rng.uniform(-lx / 2 + w, lx / 2 - w)][side]
            cy = [rng.uniform(-ly / 2 + w, ly / 2 - w), rng.uniform(-ly / 2 + w, ly / 2 - w), ly / 2 - d, -ly / 2 + d][side]
            half = (d, w, hgt / 2) if side < 2 else (w, d, hgt / 2)
            if clear(cx, cy, half[0], half[1]):
                b.add(BOX, (cx, cy, hgt / 2), half, C["furniture"], col, texture_scale=0.3, pattern=2)
        elif kind == "sofa":
            w, d = rng.uniform(0.7, 1.1), rng.uniform(0.4, 0.5)
            at = spot(w, d)
            if at is None:
                continue
            yaw = rng.uniform(-0.5, 0.5)
            b.add(BOX, (at[0], at[1], 0.22), (w, d, 0.22), C["furniture"], col, yaw=yaw, texture_scale=0.25)
            back = (at[0] - np.sin(yaw) * (d - 0.1), at[1] + np.cos(yaw) * (d - 0.1), 0.6)
            b.add(BOX, back, (w, 0.1, 0.18), C["furniture"], col, yaw=yaw, texture_scale=0.25)
        elif kind == "chair":
            at = spot(0.25, 0.25)
            if at is None:
                continue
            yaw = rng.uniform(-np.pi, np.pi)
            b.add(BOX, (at[0], at[1], 0.45), (0.22, 0.22, 0.025), C["furniture"], col, yaw=yaw, texture_scale=0.15)
            c, s = np.cos(yaw), np.sin(yaw)
            b.add(BOX, (at[0] - s * 0.2, at[1] + c * 0.2, 0.72), (0.22, 0.02, 0.25), C["furniture"], col, yaw=yaw,
                  texture_scale=0.15)
            for lx_, ly_ in ((-0.19, -0.19), (0.19, -0.19), (-0.19, 0.19), (0.19, 0.19)):
                b.add(CYLINDER, (at[0] + c * lx_ - s * ly_, at[1] + s * lx_ + c * ly_, 0.21), (0.018, 0.018, 0.21),
                      C["furniture"], col, texture_scale=0.1)
        elif kind == "lamp":
            at = spot(0.2, 0.2)
            if at is None:
                continue
            hgt = rng.uniform(1.3, 1.8)
            b.add(CYLINDER, (at[0], at[1], hgt / 2), (0.012, 0.012, hgt / 2), C["object"], (0.2, 0.2, 0.2),
                  texture_scale=0.05)
            b.add(SPHERE, (at[0], at[1], hgt + 0.12), (0.16, 0.16, 0.16), C["object"], (0.95, 0.9, 0.7), texture_scale=0.1)
        elif kind == "ball":
            r = rng.uniform(0.1, 0.3)
            at = spot(r, r)
            if at is not None:
                b.add(SPHERE, (at[0], at[1], r), (r, r, r), C["object"], rng.uniform(0.2, 0.9, 3), texture_scale=0.12)
        elif kind == "bin":
            r, hgt = rng.uniform(0.12, 0.3), rng.uniform(0.3, 1.0)
            at = spot(r, r)
            if at is not None:
                b.add(CYLINDER, (at[0], at[1], hgt / 2), (r, r, hgt / 2), C["object"], rng.uniform(0.2, 0.9, 3),
                      texture_scale=0.12)
        else:  # a picture on a wall
            w, hgt = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.5)
            if rng.random() < 0.5:
                centre, half = (rng.choice([-1, 1]) * (lx / 2 - 0.02), rng.uniform(-ly / 2 + w, ly / 2 - w), 1.6), (0.02, w, hgt)
            else:
                centre, half = (rng.uniform(-lx / 2 + w, lx / 2 - w), rng.choice([-1, 1]) * (ly / 2 - 0.02), 1.6), (w, 0.02, hgt)
            b.add(BOX, centre, half, C["object"], rng.uniform(0.2, 0.9, 3), texture_scale=0.08)
    floor_colour = tuple(rng.choice([(0.6, 0.45, 0.3), (0.45, 0.42, 0.4), (0.7, 0.6, 0.45)]))
    scene = b.build(light_dir=rng.uniform([-0.5, -0.5, 0.6], [0.5, 0.5, 1.0]), ambient=0.45, has_sky=False,
                    room_floor_class=C["floor"], room_ceiling_class=C["ceiling"], room_floor_colour=floor_colour)
    return scene, poses


# ----------------------------------------------------------------------------- driving
def _street_centreline(rng: np.random.Generator, length: float, step: float = 0.5):
    """Points (M,2) and headings (M,) of a street: straight runs joined by gentle turns."""
    headings = []
    heading = rng.uniform(-np.pi, np.pi)
    while len(headings) * step < length:
        straight = int(rng.uniform(30, 70) / step)
        headings += [heading] * straight
        turn = int(rng.uniform(15, 35) / step)
        total = rng.choice([-1, 1]) * rng.uniform(0.25, 0.7)
        headings += list(heading + total * (np.arange(1, turn + 1) / turn))
        heading += total
    headings = np.array(headings[: int(length / step) + 1])
    xy = np.cumsum(np.stack([np.cos(headings), np.sin(headings)], 1) * step, 0)
    return xy - xy[0], headings


def driving_world(rng: np.random.Generator, num_frames: int, speed: float = 1.0, step: float = 0.5):
    """Street + buildings + cars + poles + trees + forward-driving trajectory."""
    metres_per_frame = rng.uniform(0.8, 1.2) * speed
    behind, ahead = 20.0, 100.0
    xy, heading = _street_centreline(rng, behind + metres_per_frame * num_frames + ahead, step)
    left = np.stack([-np.sin(heading), np.cos(heading)], 1)
    lane = -1.75  # right-hand lane; lateral coordinates are positive to the left

    s_cam = behind + metres_per_frame * np.arange(num_frames)
    idx = s_cam / step
    i0 = np.floor(idx).astype(int)
    w = (idx - i0)[:, None]
    pos = (1 - w) * xy[i0] + w * xy[i0 + 1] + lane * ((1 - w) * left[i0] + w * left[i0 + 1])
    yaw = (1 - w[:, 0]) * heading[i0] + w[:, 0] * heading[i0 + 1]
    # look slightly into the turn, with small vibrations in pitch and roll
    look_ahead = heading[np.minimum(i0 + int(6 / step), len(heading) - 1)]
    yaw = 0.7 * yaw + 0.3 * look_ahead
    pitch = -0.02 + _smooth_walk(rng, num_frames, 0.01, (5, 20))
    roll = _smooth_walk(rng, num_frames, 0.01, (5, 20))
    poses = np.stack([look_pose((pos[i, 0], pos[i, 1], 1.65), yaw[i], pitch[i], roll[i]) for i in range(num_frames)])

    b = SceneBuilder(rng)
    b.add(PLANE, (0, 0, 0), (1, 1, 1), C["road"], (0.32, 0.32, 0.34), texture_scale=0.6)

    def place(s: float, lateral: float):
        k = min(int(s / step), len(heading) - 1)
        p = xy[k] + lateral * left[k]
        return p, heading[k]

    s = 0.0
    while s < len(heading) * step - 8:  # sidewalks in 8 m pieces that follow the curve
        for side in (-1, 1):
            p, h = place(s + 4, side * 6.5)
            b.add(BOX, (p[0], p[1], 0.075), (4.3, 1.5, 0.075), C["sidewalk"], (0.6, 0.58, 0.55), yaw=h,
                  texture_scale=0.4, pattern=2)
        s += 8
    for side in (-1, 1):
        s = rng.uniform(0, 6)
        while s < len(heading) * step - 10:
            length = rng.uniform(8, 18)
            depth, height = rng.uniform(6, 12), rng.uniform(6, 22)
            p, h = place(s + length / 2, side * (8.2 + depth / 2))
            colour = [(0.75, 0.6, 0.45), (0.6, 0.6, 0.62), (0.8, 0.75, 0.65), (0.55, 0.35, 0.3)][int(rng.integers(4))]
            b.add(BOX, (p[0], p[1], height / 2), (length / 2, depth / 2, height / 2), C["building"], colour, yaw=h,
                  texture_scale=1.2, pattern=1)
            s += length + rng.choice([0.0, 0.0, rng.uniform(3, 10)])
        s = rng.uniform(0, 10)
        while s < len(heading) * step - 10:  # parked cars
            if rng.random() < 0.6:
                p, h = place(s, side * 4.0)
                colour = rng.uniform(0.1, 0.9, 3)
                b.add(BOX, (p[0], p[1], 0.6), (2.1, 0.9, 0.42), C["car"], colour, yaw=h, texture_scale=0.3)
                q, _ = place(s - 0.3, side * 4.0)
                b.add(BOX, (q[0], q[1], 1.3), (1.1, 0.8, 0.3), C["car"], colour * 0.7, yaw=h, texture_scale=0.3)
            s += rng.uniform(5.5, 12)
        s = rng.uniform(0, 15)
        while s < len(heading) * step - 5:  # poles (street lamps, signs) and trees
            if rng.random() < 0.5:
                height = rng.uniform(3, 7)
                p, _ = place(s, side * 5.4)
                b.add(CYLINDER, (p[0], p[1], height / 2), (0.07, 0.07, height / 2), C["pole"], (0.4, 0.4, 0.42),
                      texture_scale=0.1)
            else:
                p, _ = place(s, side * 6.6)
                trunk = rng.uniform(2.0, 3.0)
                b.add(CYLINDER, (p[0], p[1], trunk / 2), (0.15, 0.15, trunk / 2), C["vegetation"], (0.4, 0.3, 0.2),
                      texture_scale=0.15)
                r = rng.uniform(1.2, 2.0)
                b.add(SPHERE, (p[0], p[1], trunk + r * 0.8), (r, r, r), C["vegetation"], (0.25, 0.5, 0.2),
                      texture_scale=0.4)
            s += rng.uniform(8, 20)
    scene = b.build(light_dir=(np.cos(rng.uniform(0, 6.28)), np.sin(rng.uniform(0, 6.28)), 1.2), ambient=0.4)
    return scene, poses


# ----------------------------------------------------------------------------- API
def simulate_pseudo_depth(depth: np.ndarray, rng: np.random.Generator, blur_sigma: float | None = None) -> np.ndarray:
    """A *simulated* monocular pseudo-depth (H,W) float32: depth under a random monotone
    distortion a·d^γ + b (γ ∈ [0.7, 1.3]: unknown scale, shift and curvature), then a
    Gaussian blur (σ = 1 % of the width by default) that smears the edges; invalid pixels
    take the largest valid value (as a network would predict "far")."""
    valid = depth > 0
    d = np.where(valid, depth, depth[valid].max() if valid.any() else 1.0)
    gamma, scale = rng.uniform(0.7, 1.3), rng.uniform(0.5, 2.0)
    shift = rng.uniform(0.0, 0.5) * float(np.median(d))
    pseudo = scale * d ** gamma + shift
    sigma = blur_sigma if blur_sigma is not None else 0.01 * depth.shape[1]
    return gaussian_filter(pseudo, sigma).astype(np.float32)


def render_sequence(preset: str = "indoor", num_frames: int = 3, height: int = 256, width: int = 320,
                    seed: int = 0, **options) -> SyntheticSequence:
    """Render ``num_frames`` consecutive frames of a new world of the given preset.

    Args:
        preset: ``"indoor"`` or ``"driving"``.
        num_frames, height, width: any positive sizes (K scales with the width).
        seed: the same seed gives bit-identical output.
        **options: ``pseudo_depth`` (bool, default False): also simulate pseudo-depth;
            ``exposure_jitter`` (float, default 0): std of a per-frame log-gain, breaks the
            photometric assumption on purpose; ``noise_std`` (float, default 0): Gaussian
            pixel noise in [0,1] units; ``speed`` (float, default 1): translation-per-frame
            factor (indoor: the same path run faster; driving: metres per frame);
            ``max_depth``, ``focal_per_width``: override the preset; ``boundary_threshold``
            (default 0.05); ``poses`` ((N,4,4) camera-to-world): render the world from these
            poses instead of its own trajectory.
    Returns:
        :class:`SyntheticSequence` (see its docstring for shapes and units).

    Conventions: exact pinhole, pixel (col, row) is the ray through the image point
    (u, v) = (col, row), so ``depth[row, col] * K^-1 @ [col, row, 1]`` is the surface point in
    the camera frame (OpenCV axes: x right, y down, z forward); depth is z-depth in metres;
    ``poses`` are camera-to-world, so ``inv(poses[s]) @ poses[t]`` maps frame t's camera
    points into frame s's camera.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r}: expected one of {sorted(PRESETS)}")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(f"render_sequence got unknown options {sorted(unknown)}; valid: {sorted(_OPTIONS)}")
    if num_frames < 1 or height < 2 or width < 2:
        raise ValueError(f"num_frames={num_frames}, height={height}, width={width}: expected ≥1, ≥2, ≥2")
    cfg = {**PRESETS[preset], **{k: v for k, v in options.items() if k in ("max_depth", "focal_per_width")}}
    rng = np.random.default_rng(seed)
    builder = indoor_world if preset == "indoor" else driving_world
    scene, poses = builder(rng, num_frames, speed=float(options.get("speed", 1.0)))
    if options.get("poses") is not None:
        poses = np.asarray(options["poses"], np.float64).reshape(-1, 4, 4)
    K = intrinsics(height, width, cfg["focal_per_width"])
    n = len(poses)
    exposure = np.exp(rng.normal(0.0, float(options.get("exposure_jitter", 0.0)), n))
    noise_std = float(options.get("noise_std", 0.0))
    rgb = np.empty((n, height, width, 3), np.uint8)
    depth = np.empty((n, height, width), np.float32)
    semantic = np.empty((n, height, width), np.uint8)
    boundary = np.empty((n, height, width), bool)
    instance = np.empty((n, height, width), np.int32)
    sky_seed = int(rng.integers(0, 2**31 - 1))
    for i in range(n):
        z, inst, rays = cast_rays(scene, K, poses[i], height, width)
        colour, face = shade(scene, z, inst, rays, poses[i], K, sky_seed)
        colour *= np.float32(exposure[i])
        if noise_std > 0:
            colour = colour + rng.normal(0.0, noise_std, colour.shape).astype(np.float32)
        rgb[i] = np.clip(colour * 255.0 + 0.5, 0, 255).astype(np.uint8)
        valid = np.isfinite(z) & (z <= cfg["max_depth"])
        depth[i] = np.where(valid, z, 0.0)
        semantic[i] = semantic_map(scene, inst, face, C["sky"])
        boundary[i] = depth_boundaries(depth[i], inst, float(options.get("boundary_threshold", 0.05)))
        instance[i] = inst
    pseudo = None
    if options.get("pseudo_depth", False):
        prng = np.random.default_rng([seed, 1])
        pseudo = np.stack([simulate_pseudo_depth(d, prng) for d in depth])
    return SyntheticSequence(rgb=rgb, depth=depth, semantic=semantic, boundary=boundary, K=K, poses=poses,
                             class_names=list(CLASS_NAMES), instance=instance, scene=scene, preset=preset,
                             seed=seed, max_depth=float(cfg["max_depth"]), pseudo_depth=pseudo, exposure=exposure)
