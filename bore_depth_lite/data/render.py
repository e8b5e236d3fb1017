"""Analytic ray casting of textured primitives: exact depth, labels, shading.

Longer than 400 lines because every primitive's ray intersection, texture and label are cast in
one vectorised pass over the scene table; split by primitive, each part would need the others.

Pixel-centre convention (used by every module of the package): the pixel in column ``col``
and row ``row`` is the ray through the image point ``(u, v) = (col, row)``, i.e.
``K^-1 @ [col, row, 1]``. So back-projecting the integer pixel coordinates of a rendered
depth map with K gives points exactly on the rendered surfaces (up to float32 rounding).

Depth is z-depth along the optical axis in metres. Rays are cast with the unnormalised
direction ``R @ K^-1 @ [u, v, 1]`` whose camera-z component is 1, so the ray parameter t of a
hit *is* its z-depth: no conversion, no approximation.

A scene is a flat table of primitives (:class:`Scene`); each frame casts all rays against the
primitives whose screen bounding rectangle they can reach (cheap culling), keeps the nearest
hit per pixel, then shades every hit pixel in one vectorised pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# Primitive kinds.
PLANE = 0      # horizontal plane z = centre_z, infinite, seen from above
BOX = 1        # box rotated by ``yaw`` about the world z axis, seen from outside
ROOM = 2       # the same box seen from inside (walls, floor, ceiling of a room)
SPHERE = 3     # radius half[0]
CYLINDER = 4   # vertical axis, radius half[0], half-height half[2] (also thin poles)

NEAR = 1e-3    # hits closer than this are ignored (metres)


@dataclass
class Scene:
    """A static world: one row per primitive (all arrays share the first dimension P).

    Fields: ``kind`` (P,) int, ``centre`` (P,3), ``half`` (P,3) half extents (radius in
    ``half[:,0]`` for spheres/cylinders), ``yaw`` (P,) radians about world z, ``semantic``
    (P,) class index, ``colour`` (P,3) albedo in [0,1], ``texture_scale`` (P,) metres of the
    coarsest noise cell, ``texture_seed`` (P,) int, ``pattern`` (P,) int (0 plain noise,
    1 windows, 2 planks/tiles). World frame: x, y horizontal, z up (metres).
    """

    kind: np.ndarray
    centre: np.ndarray
    half: np.ndarray
    yaw: np.ndarray
    semantic: np.ndarray
    colour: np.ndarray
    texture_scale: np.ndarray
    texture_seed: np.ndarray
    pattern: np.ndarray
    light_dir: np.ndarray = field(default_factory=lambda: np.array([0.4, -0.3, 0.85]))
    ambient: float = 0.35
    has_sky: bool = True
    room_floor_class: int = 0
    room_ceiling_class: int = 0
    room_floor_colour: tuple = (0.6, 0.45, 0.3)

    def __len__(self) -> int:
        return len(self.kind)


class SceneBuilder:
    """Collects primitives one by one, then freezes them into a :class:`Scene`."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.rows: list[tuple] = []

    def add(self, kind: int, centre, half, semantic: int, colour, yaw: float = 0.0,
            texture_scale: float = 0.5, pattern: int = 0) -> int:
        colour = np.clip(np.asarray(colour, float) * self.rng.uniform(0.85, 1.15, 3), 0.02, 1.0)
        seed = int(self.rng.integers(0, 2**31 - 1))
        self.rows.append((kind, np.asarray(centre, float), np.asarray(half, float), float(yaw),
                          semantic, colour, texture_scale, seed, pattern))
        return len(self.rows) - 1

    def build(self, light_dir=(0.4, -0.3, 0.85), ambient: float = 0.35, has_sky: bool = True, **room) -> Scene:
        cols = list(zip(*self.rows))
        light = np.asarray(light_dir, float)
        return Scene(kind=np.array(cols[0], np.int64), centre=np.stack(cols[1]), half=np.stack(cols[2]),
                     yaw=np.array(cols[3]), semantic=np.array(cols[4], np.uint8), colour=np.stack(cols[5]),
                     texture_scale=np.array(cols[6]), texture_seed=np.array(cols[7], np.int64),
                     pattern=np.array(cols[8], np.int64), light_dir=light / np.linalg.norm(light),
                     ambient=ambient, has_sky=has_sky, **room)


# ----------------------------------------------------------------------------- intersection
def _hit_box(o, dx, dy, dz, half, inside):
    """Slab test in the box frame; returns t (nan where missed)."""
    tn = tf = None
    for d, oc, h in ((dx, o[0], half[0]), (dy, o[1], half[1]), (dz, o[2], half[2])):
        inv = 1.0 / d
        ta = (-h - oc) * inv
        tb = (h - oc) * inv
        if tn is None:
            tn, tf = np.minimum(ta, tb), np.maximum(ta, tb)
        else:
            if not inside:
                np.maximum(tn, np.minimum(ta, tb), out=tn)
            np.minimum(tf, np.maximum(ta, tb), out=tf)
    if inside:
        return np.where(tf > NEAR, tf, np.nan)
    return np.where((tf >= tn) & (tn > NEAR), tn, np.nan)


def _hit_sphere(o, dx, dy, dz, a, r):
    b = dx * o[0] + dy * o[1] + dz * o[2]
    disc = b * b - a * (o @ o - r * r)
    t = (-b - np.sqrt(disc)) / a
    return np.where(t > NEAR, t, np.nan)


def _hit_cylinder(o, dx, dy, dz, a2, r, h):
    b = dx * o[0] + dy * o[1]
    disc = b * b - a2 * (o[0] ** 2 + o[1] ** 2 - r * r)
    t = (-b - np.sqrt(disc)) / a2
    z = o[2] + t * dz
    t = np.where((t > NEAR) & (np.abs(z) <= h), t, np.nan)
    if abs(o[2]) > h:  # the camera sees at most the cap facing it
        zc = h if o[2] > 0 else -h
        tc = (zc - o[2]) / dz
        xc, yc = o[0] + tc * dx, o[1] + tc * dy
        cap = (tc > NEAR) & (xc * xc + yc * yc <= r * r)
        t = np.where(cap & ~(t < tc), tc, t)
    return t


def _corners(scene: Scene) -> np.ndarray:
    """World corners (P,8,3) of each primitive's oriented bounding box (cached on the scene)."""
    cached = getattr(scene, "_corners_cache", None)
    if cached is not None:
        return cached
    h = scene.half.copy()
    round_ = (scene.kind == SPHERE) | (scene.kind == CYLINDER)
    h[round_, 1] = h[round_, 0]
    h[scene.kind == SPHERE, 2] = h[scene.kind == SPHERE, 0]
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    local = signs[None] * h[:, None, :]
    c, s = np.cos(scene.yaw)[:, None], np.sin(scene.yaw)[:, None]
    world = np.stack([c * local[..., 0] - s * local[..., 1], s * local[..., 0] + c * local[..., 1], local[..., 2]], -1)
    corners = world + scene.centre[:, None, :]
    object.__setattr__(scene, "_corners_cache", corners)
    return corners


_BOX_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])


def _screen_rects(scene: Scene, R_wc: np.ndarray, c_w: np.ndarray, K: np.ndarray, height: int, width: int):
    """Pixel rectangles (P,4) = (r0, r1, c0, c1) that can contain each primitive, and a (P,)
    visibility flag. The bounding box is clipped by the plane z = NEAR in front of the camera
    (corners in front plus the crossings of its 12 edges), so the rectangle bounds exactly
    the visible part of its convex hull; planes and rooms get the whole image."""
    cam = (_corners(scene) - c_w) @ R_wc.T                      # (P,8,3)
    front = cam[..., 2] > NEAR
    a, b = cam[:, _BOX_EDGES[:, 0]], cam[:, _BOX_EDGES[:, 1]]   # (P,12,3)
    with np.errstate(all="ignore"):
        w = (NEAR * 1.001 - a[..., 2]) / (b[..., 2] - a[..., 2])
        cross = a + w[..., None] * (b - a)
        crosses = (front[:, _BOX_EDGES[:, 0]] != front[:, _BOX_EDGES[:, 1]])
        pts = np.concatenate([cam, cross], 1)                   # (P,20,3)
        ok = np.concatenate([front, crosses], 1)
        u = (K[0, 0] * pts[..., 0] + K[0, 1] * pts[..., 1]) / pts[..., 2] + K[0, 2]
        v = K[1, 1] * pts[..., 1] / pts[..., 2] + K[1, 2]
    big = 1e9
    u_lo, u_hi = np.where(ok, u, big).min(1), np.where(ok, u, -big).max(1)
    v_lo, v_hi = np.where(ok, v, big).min(1), np.where(ok, v, -big).max(1)
    rects = np.stack([np.floor(np.clip(v_lo, -1, height + 1)), np.ceil(np.clip(v_hi, -1, height + 1)) + 1,
                      np.floor(np.clip(u_lo, -1, width + 1)), np.ceil(np.clip(u_hi, -1, width + 1)) + 1], 1)
    full = (scene.kind == PLANE) | (scene.kind == ROOM)
    rects[full] = (0, height, 0, width)
    rects = np.clip(rects, 0, [height, height, width, width]).astype(int)
    visible = (front.any(1) | full) & (rects[:, 0] < rects[:, 1]) & (rects[:, 2] < rects[:, 3])
    return rects, visible


@lru_cache(maxsize=8)
def _camera_rays(k: tuple, height: int, width: int) -> np.ndarray:
    """x, y of K^-1 @ [col, row, 1] for every pixel (its z is 1), (2, H*W) float32 (read-only, cached)."""
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([cols, rows, np.ones_like(cols)], 0).reshape(3, -1)
    rays = (np.linalg.inv(np.array(k).reshape(3, 3)) @ pix)
    if not np.allclose(rays[2], 1.0):
        raise ValueError(f"K={np.array(k).reshape(3, 3).tolist()}: last row must be [0, 0, 1]")
    xy = rays[:2].astype(np.float32)
    xy.flags.writeable = False
    return xy


def cast_rays(scene: Scene, K: np.ndarray, pose: np.ndarray, height: int, width: int,
              dtype=np.float32):
    """Nearest hit per pixel.

    Args:
        scene: the world.
        K: (3,3) intrinsics; pose: (4,4) camera-to-world (OpenCV camera axes).
    Returns:
        depth (H,W) z-depth, ``inf`` where nothing is hit; instance (H,W) int32 primitive
        index, -1 where nothing is hit; rays (3,H,W) world directions with camera-z = 1.
    """
    R_cw, c_w = pose[:3, :3], pose[:3, 3]
    x, y = _camera_rays(tuple(np.asarray(K, np.float64).ravel()), height, width)
    R = R_cw.astype(dtype)
    # R @ [x, y, 1] written out: numpy's matmul is ~20x slower on this (3, H*W) float32 shape
    rays = np.stack([R[k, 0] * x + R[k, 1] * y + R[k, 2] for k in range(3)]).reshape(3, height, width)
    depth = np.full((height, width), np.inf, dtype)
    instance = np.full((height, width), -1, np.int32)
    R_wc = R_cw.T
    rects, visible = _screen_rects(scene, R_wc, c_w, K, height, width)
    with np.errstate(all="ignore"):
        for i in np.flatnonzero(visible):
            r0, r1, c0, c1 = rects[i]
            dx, dy, dz = rays[0, r0:r1, c0:c1], rays[1, r0:r1, c0:c1], rays[2, r0:r1, c0:c1]
            kind, o = scene.kind[i], c_w - scene.centre[i]
            if kind in (BOX, ROOM):
                cy, sy = np.cos(scene.yaw[i]), np.sin(scene.yaw[i])
                o = np.array([cy * o[0] + sy * o[1], -sy * o[0] + cy * o[1], o[2]])
                if scene.yaw[i] != 0.0:
                    dx, dy = cy * dx + sy * dy, -sy * dx + cy * dy
                t = _hit_box(o, dx, dy, dz, scene.half[i], inside=kind == ROOM)
            elif kind == PLANE:
                t = -o[2] / dz
                t = np.where(t > NEAR, t, np.nan)
            elif kind == SPHERE:
                t = _hit_sphere(o, dx, dy, dz, dx * dx + dy * dy + dz * dz, scene.half[i, 0])
            else:
                t = _hit_cylinder(o, dx, dy, dz, dx * dx + dy * dy, scene.half[i, 0], scene.half[i, 2])
            zv = depth[r0:r1, c0:c1]
            closer = t < zv  # nan compares False
            np.copyto(zv, t, where=closer)
            np.copyto(instance[r0:r1, c0:c1], i, where=closer)
    return depth, instance, rays


# ----------------------------------------------------------------------------- shading
_NOISE_TABLE = np.random.default_rng(20251104).random(1 << 16, dtype=np.float32)
_PX, _PY = np.int32(73856093), np.int32(19349663)


def _lookup(h: np.ndarray) -> np.ndarray:
    """Scramble an int32 lattice key and read a fixed table of uniform values in [0, 1)."""
    return _NOISE_TABLE[(h ^ (h >> 15)) & 0xFFFF]


def value_noise(s: np.ndarray, t: np.ndarray, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1) on a unit lattice (bilinear with smoothstep weights).

    Lattice point (i, j) gets the table value at key i·P1 + j·P2 + seed (int32, wrapping on
    purpose), so neighbours cost one addition each."""
    fs, ft = np.floor(s), np.floor(t)
    ws, wt = s - fs, t - ft
    ws, wt = ws * ws * (3 - 2 * ws), wt * wt * (3 - 2 * wt)
    with np.errstate(over="ignore"):
        h = fs.astype(np.int32) * _PX + ft.astype(np.int32) * _PY + np.int32(seed % (1 << 31))
        a, b, c, d = _lookup(h), _lookup(h + _PX), _lookup(h + _PY), _lookup(h + (_PX + _PY))
    top = a + (b - a) * ws
    return top + ((c + (d - c) * ws) - top) * wt


_OCTAVES = (1.0, 0.3, 0.09)
_AMPLITUDES = (0.5, 0.4, 0.35)


def surface_frame(scene: Scene, i: int, px, py, pz):
    """Local geometry of points (1-D float32 arrays) on primitive i.

    Returns ``(nx, ny, nz)`` world normals, ``(s, t)`` 2-D texture coordinates in metres on
    the surface, and ``face`` (int8): for boxes/rooms the local axis (1, 2, 3 for x, y, z)
    times the sign of the outward coordinate; 0 for the other kinds.
    """
    kind = scene.kind[i]
    cyaw, syaw = np.float32(np.cos(scene.yaw[i])), np.float32(np.sin(scene.yaw[i]))
    cx, cy, cz = scene.centre[i].astype(np.float32)
    hx, hy, hz = scene.half[i].astype(np.float32)
    rx, ry, qz = px - cx, py - cy, pz - cz
    qx, qy = cyaw * rx + syaw * ry, cyaw * ry - syaw * rx
    face = np.zeros(len(px), np.int8)
    if kind in (BOX, ROOM):
        ax, ay, az = np.abs(qx) / hx, np.abs(qy) / hy, np.abs(qz) / hz
        on_x = (ax >= ay) & (ax >= az)
        on_y = ~on_x & (ay >= az)
        on_z = ~on_x & ~on_y
        sign = np.float32(-1 if kind == ROOM else 1)
        sx, sy, sz = np.sign(qx), np.sign(qy), np.sign(qz)
        lx, ly, lz = on_x * sx * sign, on_y * sy * sign, on_z * sz * sign
        face = (on_x * sx + 2 * on_y * sy + 3 * on_z * sz).astype(np.int8)
        s = np.where(on_x, qy, qx)
        t = np.where(on_z, qy, qz)
    elif kind == PLANE:
        lx, ly, lz = np.zeros_like(qx), np.zeros_like(qx), np.ones_like(qx)
        s, t = qx, qy
    elif kind == SPHERE:
        lx, ly, lz = qx / hx, qy / hx, qz / hx
        s, t = np.arctan2(qy, qx) * hx, qz
    else:
        radial = np.sqrt(qx * qx + qy * qy)
        cap = np.abs(qz) / hz > radial / hx
        inv = 1.0 / np.maximum(radial, np.float32(1e-9))
        lx, ly, lz = np.where(cap, 0, qx * inv), np.where(cap, 0, qy * inv), np.where(cap, np.sign(qz), 0)
        s, t = np.where(cap, qx, np.arctan2(qy, qx) * hx), np.where(cap, qy, qz)
    nx, ny = cyaw * lx - syaw * ly, syaw * lx + cyaw * ly
    return (nx, ny, lz.astype(np.float32)), (s, t), face


def _coverage(x, lo, hi, footprint):
    """Fraction of a pixel (a box of width ``footprint`` centred at x) inside [lo, hi]: the
    exact box-filtered edge, so hard patterns do not alias."""
    half = footprint * np.float32(0.5)
    return np.clip(np.minimum(x + half, hi) - np.maximum(x - half, lo), 0.0, None) / footprint


def _albedo(scene: Scene, i: int, s, t, footprint, floor: np.ndarray | None):
    """Procedural albedo (n,3) of primitive i: value noise over octaves, faded where it
    would alias (cells smaller than three pixel footprints), plus box-filtered patterns."""
    scale = np.float32(scene.texture_scale[i])
    seed = int(scene.texture_seed[i])
    lum = np.zeros(len(s), np.float32)
    tint = None
    for k, (cell_frac, amp) in enumerate(zip(_OCTAVES, _AMPLITUDES)):
        cell = scale * np.float32(cell_frac)
        inv_cell = np.float32(1.0) / cell
        if k > 0:
            fade = np.clip(cell / (3.0 * footprint) - 1.0, 0.0, 1.0)
            if not fade.any():
                break
        noise = value_noise(s * inv_cell, t * inv_cell, seed + k) - np.float32(0.5)
        lum += np.float32(amp) * noise * (fade if k > 0 else np.clip(cell / (3.0 * footprint) - 1.0, 0.0, 1.0))
        if k == 0:
            tint = noise
    pattern = int(scene.pattern[i])
    if pattern == 1:  # building facades: a grid of dark windows every 3 m
        lum -= 0.45 * (_coverage(np.mod(s, 3.0), 0.9, 2.1, footprint) * _coverage(np.mod(t, 3.0), 1.05, 2.25, footprint))
    joints = None
    if pattern == 2 or (floor is not None and floor.any()):  # planks / tiles: 1.5 cm joints every 0.25 m
        joints = _coverage(np.abs(s - 0.25 * np.round(s / 0.25)), -0.0075, 0.0075, footprint)
    if pattern == 2:
        lum -= 0.3 * joints
    colour = np.broadcast_to(scene.colour[i].astype(np.float32), (len(s), 3))
    if floor is not None and floor.any():
        colour = colour.copy()
        colour[floor] = scene.room_floor_colour
        lum[floor] -= 0.3 * joints[floor]
    gain = 1.0 + 1.2 * lum
    albedo = np.stack([colour[:, 0] * gain * (1 + 0.25 * tint), colour[:, 1] * gain,
                       colour[:, 2] * gain * (1 - 0.25 * tint)], 1)
    return np.clip(albedo, 0.0, 1.0)


def sky_colour(dx, dy, dz, seed: int) -> np.ndarray:
    """Sky radiance (n,3) from world directions: a gradient plus clouds at infinity.

    Depends on direction only, so it is exactly consistent across camera translations.
    """
    norm = np.sqrt(dx * dx + dy * dy + dz * dz)
    elev = np.arcsin(np.clip(dz / norm, -1, 1)).astype(np.float32)
    azim = np.arctan2(dy, dx).astype(np.float32)
    w = np.clip(elev / 0.6, 0, 1)[:, None]
    base = (1 - w) * np.array([0.78, 0.84, 0.92], np.float32) + w * np.array([0.35, 0.55, 0.85], np.float32)
    clouds = value_noise(azim * 4.0, elev * 12.0, seed) * 0.6 + value_noise(azim * 12.0, elev * 36.0, seed + 1) * 0.4
    cover = np.clip((clouds - 0.45) * 2.5, 0, 1)[:, None]
    return (1 - cover) * base + cover * np.float32(0.95)


def shade(scene: Scene, depth: np.ndarray, instance: np.ndarray, rays: np.ndarray,
          pose: np.ndarray, K: np.ndarray, sky_seed: int = 0):
    """Lambertian colour (H,W,3) float32 in [0,1], and the face map (H,W) int8.

    The light is fixed in the world, so a surface point has the same brightness in every
    frame (the photometric assumption). ``face`` tells which face of a box/room a pixel
    sees (±1, ±2, ±3 = local ±x, ±y, ±z; 0 otherwise): rooms use it for floor and ceiling.
    Pixels are sorted by primitive so each primitive is shaded with scalar parameters.
    """
    height, width = depth.shape
    n = height * width
    key = (instance.reshape(-1) + 1).astype(np.uint16)  # 0 = sky; radix sort for 16-bit keys
    order = np.argsort(key, kind="stable")
    counts = np.bincount(key, minlength=len(scene) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)])
    t_all = depth.reshape(-1)[order]
    d_all = [rays[k].reshape(-1)[order] for k in range(3)]
    colour = np.empty((n, 3), np.float32)
    face = np.zeros(n, np.int8)
    c = pose[:3, 3].astype(np.float32)
    focal = np.float32(0.5 * (K[0, 0] + K[1, 1]))
    L = scene.light_dir.astype(np.float32)
    if counts[0]:
        colour[: counts[0]] = sky_colour(*(d[: counts[0]] for d in d_all), sky_seed)
    for i in np.flatnonzero(counts[1:]):
        sl = slice(starts[i + 1], starts[i + 2])
        t = t_all[sl]
        dx, dy, dz = (d[sl] for d in d_all)
        (nx, ny, nz), (s, tt), f = surface_frame(scene, i, c[0] + t * dx, c[1] + t * dy, c[2] + t * dz)
        dnorm = np.sqrt(dx * dx + dy * dy + dz * dz)
        cos_view = np.abs(nx * dx + ny * dy + nz * dz) / dnorm
        footprint = t * dnorm / (focal * np.maximum(cos_view, np.float32(0.25)))
        floor = (f == -3) if scene.kind[i] == ROOM else None
        albedo = _albedo(scene, i, s, tt, footprint, floor)
        lambert = np.clip(nx * L[0] + ny * L[1] + nz * L[2], 0.0, None)
        colour[sl] = albedo * (np.float32(scene.ambient) + np.float32(1 - scene.ambient) * lambert)[:, None]
        face[sl] = f
    out = np.empty_like(colour)
    out[order] = colour
    face_map = np.empty_like(face)
    face_map[order] = face
    return out.reshape(height, width, 3), face_map.reshape(height, width)


def semantic_map(scene: Scene, instance: np.ndarray, face: np.ndarray, sky_class: int = 0) -> np.ndarray:
    """Class per pixel (H,W) uint8: the primitive's class; a room's floor face and ceiling
    face take ``scene.room_floor_class`` and ``scene.room_ceiling_class``."""
    sem = np.where(instance >= 0, scene.semantic[np.maximum(instance, 0)], sky_class).astype(np.uint8)
    room = (instance >= 0) & (scene.kind[np.maximum(instance, 0)] == ROOM)
    sem[room & (face == -3)] = scene.room_floor_class
    sem[room & (face == 3)] = scene.room_ceiling_class
    return sem


def depth_boundaries(depth: np.ndarray, instance: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Exact occlusion-edge map (H,W) bool.

    A pixel is marked when a 4-neighbour belongs to another primitive and lies more than
    ``threshold`` farther in relative depth: (d_far - d_near) / d_near > threshold. Invalid
    pixels (depth 0 or inf: sky, beyond range) count as infinitely far. The primitive test
    keeps grazing surfaces (a road seen at 60 m, where adjacent rows differ by > 5 %) from
    being flagged: every primitive is convex or, for rooms, seen from inside, so it cannot
    occlude itself.
    """
    d = np.where((depth > 0) & np.isfinite(depth), depth, np.inf)
    edge = np.zeros(d.shape, bool)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        da, db = d[tuple(a)], d[tuple(b)]
        other = instance[tuple(a)] != instance[tuple(b)]
        with np.errstate(invalid="ignore"):
            a_near = other & np.isfinite(da) & (db > da * (1 + threshold))
            b_near = other & np.isfinite(db) & (da > db * (1 + threshold))
        edge[tuple(a)] |= a_near
        edge[tuple(b)] |= b_near
    return edge
