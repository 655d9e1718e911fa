"""Procedural multi-task scenes with consistent labels (numpy only).

Each scene is a small 3-D world rendered by ray casting with a pinhole
camera 1.5 m above a floor, looking at a back wall: 1-4 objects (spheres,
boxes, cylinders, pyramids) stand on the floor at random depths. Every label
comes from the same geometry:

- semseg: the class of the visible surface (`CLASS_NAMES`);
- depth: the z-distance of the visible surface, metres;
- normals: the surface normal, camera frame (x right, y up, z toward the
  camera), unit length;
- edge: 1 where neighbouring pixels see different surfaces (another class
  or another object: occlusion boundaries are depth discontinuities);
- saliency: 1 on objects (the foreground), 0 on wall and floor.

The image is the class's texture (in metric surface coordinates, so texture
shrinks with distance) times Lambertian shading, blended toward a fog colour
with depth, plus noise: classes are recognizable by local appearance and
depth is inferable from perspective, size, shading and fog.
"""

import numpy as np

CLASS_NAMES = ("wall", "floor", "sphere", "box", "cylinder", "pyramid")
NUM_CLASSES = len(CLASS_NAMES)
OBJECT_CLASSES = (2, 3, 4, 5)
IGNORE_LABEL = 255
CAMERA_HEIGHT = 1.5
# Base colours (RGB in [0, 1]) of each class; jittered per scene.
_COLORS = np.array([[0.80, 0.75, 0.62], [0.45, 0.36, 0.30],
                    [0.85, 0.25, 0.20], [0.25, 0.40, 0.85],
                    [0.30, 0.75, 0.35], [0.90, 0.80, 0.25]], np.float32)


def _texture(cls, p):
    """Texture in [0, 1] of class `cls` at world points `p` (..., 3)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    if cls == 0:  # Wall: horizontal planks.
        return 0.5 + 0.5 * np.sin(2 * np.pi * y / 0.35)
    if cls == 1:  # Floor: 0.5 m tiles.
        return ((np.floor(x / 0.5) + np.floor(z / 0.5)) % 2).astype(np.float32)
    if cls == 2:  # Sphere: dots.
        gx, gy = (x / 0.12) % 1 - 0.5, (y / 0.12) % 1 - 0.5
        return (gx**2 + gy**2 < 0.09).astype(np.float32)
    if cls == 3:  # Box: diagonal stripes.
        return 0.5 + 0.5 * np.sin(2 * np.pi * (x + y + z) / 0.15)
    if cls == 4:  # Cylinder: vertical stripes.
        return 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * (x + z) / 0.1))
    return 0.5 + 0.5 * np.sin(2 * np.pi * x / 0.1) * np.sin(2 * np.pi * y / 0.1)


def _ray_convex(rays, planes):
    """Ray casting into a convex solid {p : n . p <= d for (n, d)}.

    Returns the entry distance `t` (inf where missed) and the normal of the
    entry face (world frame, z forward) per ray.
    """
    t_enter = np.zeros(rays.shape[:-1], np.float32)
    t_exit = np.full(rays.shape[:-1], np.inf, np.float32)
    normal_index = np.full(rays.shape[:-1], -1)
    hit = np.ones(rays.shape[:-1], bool)
    normals = np.array([n for n, _ in planes], np.float32)
    for i, (n, d) in enumerate(planes):
        denom = rays @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = d / denom
        entering = denom < 0
        later = entering & (t > t_enter)
        t_enter = np.where(later, t, t_enter)
        normal_index = np.where(later, i, normal_index)
        t_exit = np.where(denom > 0, np.minimum(t_exit, t), t_exit)
        hit &= ~((denom == 0) & (d < 0))
    hit &= (t_enter <= t_exit) & (normal_index >= 0)
    t = np.where(hit, t_enter, np.inf)
    return t, normals[np.maximum(normal_index, 0)]


def _hit_sphere(rays, c, r):
    b = rays @ c
    a = (rays**2).sum(-1)
    disc = b**2 - a * (c @ c - r**2)
    with np.errstate(invalid="ignore"):
        t = (b - np.sqrt(disc)) / a
    t = np.where(disc > 0, t, np.inf)
    n = (t[..., None] * rays - c) / r
    return t, n


def _hit_cylinder(rays, c, r, height):
    dx, dy, dz = rays[..., 0], rays[..., 1], rays[..., 2]
    a = dx**2 + dz**2
    b = dx * c[0] + dz * c[2]
    disc = b**2 - a * (c[0]**2 + c[2]**2 - r**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (b - np.sqrt(disc)) / a
        y_side = t_side * dy
        side_ok = (disc > 0) & (y_side >= c[1]) & (y_side <= c[1] + height)
        t_side = np.where(side_ok, t_side, np.inf)
        top = c[1] + height
        t_cap = np.where(dy != 0, top / dy, np.inf)
    px, pz = t_cap * dx - c[0], t_cap * dz - c[2]
    cap_ok = (t_cap > 0) & (px**2 + pz**2 <= r**2)
    t_cap = np.where(cap_ok, t_cap, np.inf)
    p = t_side[..., None] * rays
    side_n = np.stack([(p[..., 0] - c[0]) / r, np.zeros_like(dx),
                       (p[..., 2] - c[2]) / r], -1)
    use_cap = t_cap < t_side
    n = np.where(use_cap[..., None], np.array([0, 1, 0], np.float32), side_n)
    return np.minimum(t_side, t_cap), n


def _object_hit(rays, kind, x, z, size, rng):
    floor = -CAMERA_HEIGHT
    if kind == 2:
        return _hit_sphere(rays, np.array([x, floor + size, z], np.float32),
                           size)
    if kind == 4:
        return _hit_cylinder(rays, np.array([x, floor, z], np.float32),
                             size * 0.7, size * rng.uniform(1.5, 2.5))
    if kind == 3:
        h, w = size * rng.uniform(1.0, 2.0), size * rng.uniform(0.8, 1.4)
        planes = [((1, 0, 0), x + w), ((-1, 0, 0), -(x - w)),
                  ((0, 1, 0), floor + h), ((0, -1, 0), -floor),
                  ((0, 0, 1), z + w), ((0, 0, -1), -(z - w))]
    else:
        h, w = size * rng.uniform(1.5, 2.5), size * 1.1
        s = h / w  # Faces rise by h over the half-width w.
        planes = [((0, -1, 0), -floor)]
        for nx, nz in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            n = np.array([nx * s, 1.0, nz * s], np.float32)
            n /= np.linalg.norm(n)
            d = n @ np.array([x + nx * w, floor, z + nz * w], np.float32)
            planes.append((tuple(n), float(d)))
    planes = [(np.array(n, np.float32), np.float32(d)) for n, d in planes]
    return _ray_convex(rays, planes)


def _edges(surface):
    """1 on both sides of every change of `surface` id between neighbours."""
    edge = np.zeros(surface.shape, bool)
    for axis in (0, 1):
        a = np.take(surface, range(surface.shape[axis] - 1), axis=axis)
        b = np.take(surface, range(1, surface.shape[axis]), axis=axis)
        jump = a != b
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, 1)
        edge |= np.pad(jump, pad)
        pad[axis] = (1, 0)
        edge |= np.pad(jump, pad)
    return edge


def make_scene(seed, height, width):
    """Renders scene `seed` at `height` x `width`; see the module docstring."""
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < 16:
            raise ValueError(f"{name} must be an int >= 16. "
                             f"Received: {name}={value}")
    rng = np.random.default_rng(seed)
    f = 0.8 * width
    cy = rng.uniform(0.25, 0.4) * height  # Horizon row: looking down a bit.
    v, u = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    rays = np.stack([(u - width / 2) / f, -(v - cy) / f,
                     np.ones_like(u)], -1)

    wall_z = rng.uniform(6.0, 10.0)
    with np.errstate(divide="ignore"):
        floor_t = np.where(rays[..., 1] < 0, -CAMERA_HEIGHT / rays[..., 1],
                           np.inf)
    on_floor = floor_t < wall_z
    depth = np.where(on_floor, floor_t, wall_z).astype(np.float32)
    semseg = on_floor.astype(np.uint8)  # 0 wall, 1 floor.
    surface = semseg.astype(np.int32)  # Which surface each pixel sees.
    normals = np.zeros((height, width, 3), np.float32)
    normals[..., 1] = on_floor
    normals[..., 2] = ~on_floor  # Toward the camera (camera frame).

    objects = []
    for _ in range(rng.integers(1, 5)):
        z = rng.uniform(2.5, wall_z - 1.0)
        x = rng.uniform(-0.8, 0.8) * z * (width / 2) / f
        objects.append((z, x, int(rng.choice(OBJECT_CLASSES)),
                        rng.uniform(0.35, 0.8)))
    for index, (z, x, kind, size) in enumerate(sorted(objects,
                                                      reverse=True)):
        t, n = _object_hit(rays, kind, x, z, size, rng)
        closer = (t > 0) & (t < depth)
        depth = np.where(closer, t, depth).astype(np.float32)
        semseg = np.where(closer, kind, semseg).astype(np.uint8)
        surface = np.where(closer, 2 + index, surface)
        # World frame has z forward; the camera frame's z points back.
        n_cam = n * np.array([1, 1, -1], np.float32)
        normals = np.where(closer[..., None], n_cam, normals)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)

    points = rays * depth[..., None]
    albedo = np.zeros((height, width, 3), np.float32)
    for cls in range(NUM_CLASSES):
        mask = semseg == cls
        if not mask.any():
            continue
        color = np.clip(_COLORS[cls] * rng.uniform(0.8, 1.2, 3), 0, 1)
        tex = _texture(cls, points[mask])
        albedo[mask] = color * (0.55 + 0.45 * tex[:, None])
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.4, 1.0),
                      rng.uniform(0.3, 1.0)], np.float32)
    light /= np.linalg.norm(light)
    shading = 0.35 + 0.65 * np.clip(normals @ light, 0.0, 1.0)
    fog = np.exp(-depth / rng.uniform(12.0, 25.0))[..., None]
    fog_color = rng.uniform(0.6, 0.9) * np.ones(3, np.float32)
    image = albedo * shading[..., None] * fog + fog_color * (1 - fog)
    image = image * 255 + rng.normal(0, 3, image.shape)
    return {
        "image": np.clip(image, 0, 255).astype(np.uint8),
        "semseg": semseg,
        "depth": depth[..., None],
        "normals": normals.astype(np.float32),
        "edge": _edges(surface).astype(np.float32)[..., None],
        "saliency": np.isin(semseg, OBJECT_CLASSES).astype(
            np.float32)[..., None],
    }


def make_scenes(seeds, height, width):
    """`make_scene` for each seed, stacked on a new batch axis."""
    scenes = [make_scene(int(s), height, width) for s in seeds]
    return {k: np.stack([s[k] for s in scenes]) for k in scenes[0]}
