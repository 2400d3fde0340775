"""Painting synthetic people: signed-distance body parts composited far to near over a procedural
background (`backgrounds`), anti-aliased, at any resolution. `render`, `person_mask` and
`garment_coverage` are the public API (see `keras_disentangle.synthetic`).
"""

from __future__ import annotations

import math

import numpy as np

from keras_disentangle.synthetic import body
from keras_disentangle.synthetic.backgrounds import render_background

_EYE = np.array([45.0, 32.0, 30.0])


# ----------------------------------------------------------------------------------------------
# Drawing: signed distances on pixel grids, in the pose's frame (pixels), composited far to near.

class _Part:
    """One drawable primitive: a signed distance `sdf(ys, xs) -> (d, extra)` plus its paint."""

    def __init__(self, owner, box, sdf, paint):
        self.owner, self.box, self.sdf, self.paint = owner, box, sdf, paint


def _shade(extra, colour):
    """Colour shaded across a limb, `extra` = distance from the axis / radius in [0, 1]."""
    return np.asarray(colour, np.float32) * (1.06 - 0.3 * np.minimum(extra, 1.0) ** 2)[..., None]


def _capsule(owner, a, b, ra, rb, colour) -> _Part:
    """A segment a -> b with radius ra -> rb (a disc when a == b); `extra` = distance / radius."""
    ay, ax = a
    by, bx = b[0] - ay, b[1] - ax
    length2 = by * by + bx * bx + 1e-9

    def sdf(ys, xs):
        t = np.clip(((ys - ay) * by + (xs - ax) * bx) / length2, 0.0, 1.0)
        dist = np.hypot(ys - ay - t * by, xs - ax - t * bx)
        radius = ra + t * (rb - ra)
        return dist - radius, dist / radius

    r = max(ra, rb)
    box = (min(ay, b[0]) - r, min(ax, b[1]) - r, max(ay, b[0]) + r, max(ax, b[1]) + r)
    return _Part(owner, box, sdf, lambda ys, xs, extra: _shade(extra, colour))


def _trapezoid(owner, top, bottom, top_w, bottom_w, rounding, paint) -> _Part:
    """A rounded trapezoid along the axis top -> bottom.

    `extra` = (across, along, lateral): the offset from the axis relative to the local half width
    (about [-1, 1]), the position along the axis in [0, 1], and the offset in pixels.
    """
    top, bottom = np.asarray(top, float), np.asarray(bottom, float)
    axis = bottom - top
    length = float(np.hypot(*axis)) + 1e-9
    axis = axis / length
    normal = np.array([-axis[1], axis[0]])
    inner_top, inner_bottom = top + axis * rounding, bottom - axis * rounding
    corners = [inner_top + normal * (top_w - rounding), inner_bottom + normal * (bottom_w - rounding),
               inner_bottom - normal * (bottom_w - rounding), inner_top - normal * (top_w - rounding)]

    def sdf(ys, xs):
        nearest = np.full(np.broadcast_shapes(ys.shape, xs.shape), np.inf)
        sides = []
        for k in range(4):
            (a_y, a_x), (b_y, b_x) = corners[k], corners[(k + 1) % 4]
            e_y, e_x = b_y - a_y, b_x - a_x
            w_y, w_x = ys - a_y, xs - a_x
            t = np.clip((w_y * e_y + w_x * e_x) / (e_y * e_y + e_x * e_x + 1e-9), 0.0, 1.0)
            nearest = np.minimum(nearest, (w_y - t * e_y) ** 2 + (w_x - t * e_x) ** 2)
            sides.append(e_x * w_y - e_y * w_x)
        # Inside a convex polygon every edge sees the point on the same side, whatever the winding.
        inside = np.all([side <= 0 for side in sides], axis=0) | np.all([side >= 0 for side in sides], axis=0)
        d = np.where(inside, -np.sqrt(nearest), np.sqrt(nearest)) - rounding
        along = np.clip(((ys - top[0]) * axis[0] + (xs - top[1]) * axis[1]) / length, 0.0, 1.0)
        lateral = (ys - top[0]) * normal[0] + (xs - top[1]) * normal[1]
        return d, (lateral / (top_w + along * (bottom_w - top_w)), along, lateral)

    ys_c = [c[0] for c in corners]
    xs_c = [c[1] for c in corners]
    box = (min(ys_c) - rounding, min(xs_c) - rounding, max(ys_c) + rounding, max(xs_c) + rounding)
    return _Part(owner, box, sdf, paint)


def _project(pose, offset_body) -> tuple[float, float]:
    """2-D pixel offset (dy, dx) of a body-frame offset (in body units) under the pose's yaw."""
    x, y, z = offset_body
    return (pose["scale"] * y,
            pose["scale"] * (x * math.cos(pose["yaw"]) + z * math.sin(pose["yaw"])))


def _torso_paint(fg, pose, length_px):
    """Paint of the upper garment: shading across the torso and the pattern in torso coordinates."""
    upper = np.asarray(fg["upper"], np.float32)
    accent = np.asarray(fg["pattern"]["color"], np.float32)
    kind, scale = fg["pattern"]["kind"], pose["scale"]
    facing = math.cos(pose["yaw"])
    # The logo and the jacket opening sit on the chest's front surface: they slide sideways as the
    # body turns and are hidden from behind.
    chest_dx = _project(pose, (0.0, 0.0, body.TORSO_DEPTH))[1]

    def paint(ys, xs, extra):
        across, along, lateral = extra
        alpha = None
        if kind == "stripes":
            period = fg["pattern"]["period"] * scale
            distance = np.abs(np.mod(along * length_px / period, 1.0) - 0.5) * period
            alpha = np.clip(0.25 * period - distance + 0.5, 0.0, 1.0) * (along > 0.06)
        elif kind in ("logo", "jacket") and facing > 0.2:
            dx = lateral - chest_dx
            if kind == "jacket":
                alpha = np.clip(0.035 * scale * facing - np.abs(dx) + 0.5, 0.0, 1.0) * (along > 0.02)
            else:
                dy, dx = along * length_px - 0.3 * length_px, dx / facing
                if fg["pattern"]["shape"] == "circle":
                    distance = np.hypot(dy, dx)
                else:
                    distance = np.maximum(np.abs(dy), np.abs(dx))
                alpha = np.clip(0.045 * scale - distance + 0.5, 0.0, 1.0)
        colour = np.broadcast_to(upper, across.shape + (3,))
        if alpha is not None:
            colour = colour + alpha[..., None] * (accent - upper)
        return colour * (1.06 - 0.3 * np.minimum(np.abs(across), 1.0) ** 2)[..., None]

    return paint


def _head_part(fg, pose) -> _Part:
    """The head ellipse: face where the head faces the camera, hair on top and at the back."""
    cy, cx = pose["head"]
    ry, rx = body.HEAD_RY * pose["scale"], body.HEAD_RX * pose["scale"]
    yaw = pose["yaw"]
    skin, hair = np.asarray(fg["skin"], np.float32), np.asarray(fg["hair"], np.float32)
    eyes = []
    for side in (-1.0, 1.0):
        # Eye centres on the unit head sphere (head frame), turned by the yaw into the image.
        ex, ez = side * 0.4, 0.9
        if -ex * math.sin(yaw) + ez * math.cos(yaw) > 0.25:
            eyes.append((-0.08, ex * math.cos(yaw) + ez * math.sin(yaw)))

    def sdf(ys, xs):
        u, v = (xs - cx) / rx, (ys - cy) / ry
        return (np.hypot(u, v) - 1.0) * min(rx, ry), (u, v)

    def paint(ys, xs, extra):
        u, v = extra
        w = np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, 1.0))
        forward = u * math.sin(yaw) + w * math.cos(yaw)
        hairline = np.maximum(-0.42 + 0.12 * u * u - v, np.where(v < 0.3, 0.05 - forward, -1.0))
        hair_alpha = np.clip(hairline * ry + 0.5, 0.0, 1.0)
        colour = skin + hair_alpha[..., None] * (hair - skin)
        for ev, eu in eyes:
            eye_alpha = np.clip(0.13 * rx - np.hypot((u - eu) * rx, (v - ev) * ry) + 0.5, 0.0, 1.0)
            colour = colour + (eye_alpha * (1.0 - hair_alpha))[..., None] * (_EYE - colour)
        return colour * (0.82 + 0.22 * w)[..., None]

    return _Part("head", (cy - ry, cx - rx, cy + ry, cx + rx), sdf, paint)


def _arm_parts(fg, pose, side: str) -> list[_Part]:
    s, build, kp = pose["scale"], fg["build"], pose["keypoints"]
    sho, elb, wri = (kp[2], kp[3], kp[4]) if side == "r" else (kp[5], kp[6], kp[7])
    owner = side + "arm"
    cloth, skin = fg["upper"], fg["skin"]
    sleeve = fg["sleeves"] == "long"
    arm_r, fore_r = body.ARM_R * s * build, body.FOREARM_R * s * build
    parts = [_capsule(owner, sho, elb, arm_r, fore_r, cloth if sleeve else skin),
             _capsule(owner, elb, wri, fore_r, fore_r * 0.9, cloth if sleeve else skin)]
    if not sleeve:
        cuff = [sho[0] + 0.5 * (elb[0] - sho[0]), sho[1] + 0.5 * (elb[1] - sho[1])]
        parts.append(_capsule(owner, sho, cuff, arm_r * 1.12, arm_r * 1.08, cloth))
    direction = np.subtract(wri, elb)
    direction = direction / (np.hypot(*direction) + 1e-9)
    hand = [wri[0] + direction[0] * 0.02 * s, wri[1] + direction[1] * 0.02 * s]
    hand_r = body.HAND_R * s * build
    parts.append(_capsule(owner, hand, hand, hand_r, hand_r, skin))
    return parts


def _leg_parts(fg, pose, side: str) -> list[_Part]:
    s, build, kp = pose["scale"], fg["build"], pose["keypoints"]
    hip, kne, ank = (kp[8], kp[9], kp[10]) if side == "r" else (kp[11], kp[12], kp[13])
    owner = side + "leg"
    covered = fg["lower_kind"] == "trousers"
    leg = fg["lower"] if covered else fg["skin"]
    thigh_r, knee_r, ankle_r = body.THIGH_R * s * build, body.KNEE_R * s * build, body.ANKLE_R * s * build
    parts = [_capsule(owner, hip, kne, thigh_r, knee_r, leg),
             _capsule(owner, kne, ank, knee_r, ankle_r, leg)]
    if fg["lower_kind"] == "shorts":
        hem = [hip[0] + 0.6 * (kne[0] - hip[0]), hip[1] + 0.6 * (kne[1] - hip[1])]
        parts.append(_capsule(owner, hip, hem, thigh_r * 1.1, knee_r * 1.15, fg["lower"]))
    heel_dy, heel_dx = _project(pose, (0.0, 0.028, -0.012))
    toe_dy, toe_dx = _project(pose, (0.0, 0.032, 0.075))
    shoe_r = body.SHOE_R * s * build
    parts.append(_capsule(owner, [ank[0] + heel_dy, ank[1] + heel_dx], [ank[0] + toe_dy, ank[1] + toe_dx],
                          shoe_r, shoe_r * 0.9, fg["shoes"]))
    return parts


def person_parts(fg, pose) -> list[_Part]:
    """Every primitive of the person, in drawing order (far to near)."""
    s, build, kp, yaw = pose["scale"], fg["build"], pose["keypoints"], pose["yaw"]
    depth = pose["depth"]
    neck, mid_hip = np.asarray(kp[1]), (np.asarray(kp[8]) + np.asarray(kp[11])) / 2
    spine = mid_hip - neck
    top, bottom = neck + 0.044 * spine, mid_hip + 0.09 * spine
    cos, sin = abs(math.cos(yaw)), abs(math.sin(yaw))
    top_w = (body.TORSO_TOP_W * cos + body.TORSO_DEPTH * sin) * s * build
    bottom_w = (body.TORSO_BOTTOM_W * cos + body.TORSO_DEPTH * sin) * s * build
    length = float(np.hypot(*(bottom - top)))
    torso = _trapezoid("torso", top, bottom, top_w, bottom_w, body.TORSO_ROUND * s * build,
                       _torso_paint(fg, pose, length))
    lower = fg["lower"]
    hip_r = body.THIGH_R * s * build * 1.05
    waist = [_capsule("waist", kp[8], kp[11], hip_r, hip_r, lower)]
    if fg["lower_kind"] == "skirt":
        hem = mid_hip + np.array([0.24 * s, 0.0])
        hem_w = (0.16 * cos + 0.12 * sin) * s * build
        waist.append(_trapezoid("waist", bottom - np.array([0.06 * s, 0.0]), hem, bottom_w, hem_w,
                                0.02 * s, lambda ys, xs, extra: _shade(np.abs(extra[0]), lower)))
    # Long hair and a backpack hang behind the torso: hidden in front views, on top from behind.
    behind = []
    if fg["backpack"] is not None:
        dy, dx = _project(pose, (0.0, 0.0, -(body.TORSO_DEPTH + 0.045) * build))
        bag_w = (0.085 * cos + 0.05 * sin) * s * build
        behind.append(_trapezoid("back", [neck[0] + 0.06 * s + dy, neck[1] + dx],
                                 [neck[0] + 0.3 * s + dy, neck[1] + dx], bag_w, bag_w, 0.035 * s,
                                 lambda ys, xs, extra: _shade(np.abs(extra[0]), fg["backpack"])))
    if fg["hair_length"] != "short":
        dy, dx = _project(pose, (0.0, 0.0, -0.03))
        end = 0.13 if fg["hair_length"] == "medium" else 0.26
        head = pose["head"]
        behind.append(_capsule("back", [head[0] + dy, head[1] + dx], [head[0] + end * s, head[1] + dx],
                               0.05 * s, 0.056 * s, fg["hair"]))
    neck_part = _capsule("neck", kp[1], pose["head"], body.NECK_R * s * build, body.NECK_R * s * build, fg["skin"])
    arms = {side: (float(np.mean([depth[j] for j in joints])), _arm_parts(fg, pose, side))
            for side, joints in (("r", (2, 3, 4)), ("l", (5, 6, 7)))}
    legs = sorted((float(np.mean([depth[j] for j in joints])), side)
                  for side, joints in (("r", (8, 9, 10)), ("l", (11, 12, 13))))
    far_arms = [parts for z, parts in sorted(arms.values(), key=lambda a: a[0]) if z < -0.04 * s]
    near_arms = [parts for z, parts in sorted(arms.values(), key=lambda a: a[0]) if z >= -0.04 * s]
    facing_camera = math.cos(yaw) > 0
    parts = [p for group in far_arms for p in group]
    parts += behind if facing_camera else []
    for _, side in legs:
        parts += _leg_parts(fg, pose, side)
    parts += waist + [torso]
    parts += [] if facing_camera else behind
    parts += [neck_part, _head_part(fg, pose)]
    parts += [p for group in near_arms for p in group]
    return parts


def _composite(parts, frame_hw, size, canvas=None) -> np.ndarray:
    """Draws `parts` (in frame pixels) at `size`; returns the coverage mask, painting `canvas` if given."""
    height, width = size
    sy, sx = height / frame_hw[0], width / frame_hw[1]
    # Render pixels per frame pixel: signed distances are in frame pixels, anti-aliasing in render pixels.
    s = math.sqrt(sy * sx)
    covered = np.zeros(size, bool)
    for part in parts:
        y0, x0, y1, x1 = part.box
        i0, i1 = max(0, math.floor((y0 + 0.5) * sy - 0.5) - 1), min(height, math.ceil((y1 + 0.5) * sy - 0.5) + 2)
        j0, j1 = max(0, math.floor((x0 + 0.5) * sx - 0.5) - 1), min(width, math.ceil((x1 + 0.5) * sx - 0.5) + 2)
        if i0 >= i1 or j0 >= j1:
            continue
        ys = ((np.arange(i0, i1) + 0.5) / sy - 0.5)[:, None]
        xs = ((np.arange(j0, j1) + 0.5) / sx - 0.5)[None, :]
        d, extra = part.sdf(ys, xs)
        alpha = np.clip(0.5 - d * s, 0.0, 1.0)
        covered[i0:i1, j0:j1] |= alpha > 0
        if canvas is not None:
            region = canvas[i0:i1, j0:j1]
            region += alpha[..., None].astype(np.float32) * (part.paint(ys, xs, extra) - region)
    return covered


# ----------------------------------------------------------------------------------------------
# Public rendering API.

def _check_size(size) -> tuple[int, int]:
    if len(size) != 2 or min(size) < 4:
        raise ValueError(f"`size` must be (height, width) with both >= 4, got {size!r}.")
    return int(size[0]), int(size[1])


def render(fg: dict, bg: dict, pose: dict, size: tuple[int, int] = (128, 64)) -> np.ndarray:
    """Renders a person with identity `fg` in pose `pose` over background `bg`.

    Deterministic and a pure function of its arguments, so any recombination of factors, at any
    resolution, has an exact target. Edges are anti-aliased from signed distances.

    Args:
      fg: identity dict (`sample_identity`).
      bg: background dict (`sample_background`).
      pose: pose dict (`sample_pose`); its coordinates refer to `pose["height"] x pose["width"]`
        and are scaled to `size`.
      size: (height, width) of the output. Defaults to `(128, 64)`.

    Returns:
      uint8 `(height, width, 3)` RGB image, e.g. `(128, 64, 3)`.

    Raises:
      ValueError: if `size` is not two ints >= 4.
    """
    size = _check_size(size)
    canvas = render_background(bg, size).copy()
    _composite(person_parts(fg, pose), (pose["height"], pose["width"]), size, canvas)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def person_mask(fg: dict, pose: dict, size: tuple[int, int] = (128, 64)) -> np.ndarray:
    """The pixels the person touches in `render(fg, ·, pose, size)` (any coverage, edges included).

    Outside this mask the rendered image equals the background exactly.

    Args:
      fg: identity dict; it matters (build, hair length, skirt and backpack change the outline).
      pose: pose dict.
      size: (height, width). Defaults to `(128, 64)`.

    Returns:
      bool `(height, width)`.

    Raises:
      ValueError: if `size` is not two ints >= 4.
    """
    size = _check_size(size)
    return _composite(person_parts(fg, pose), (pose["height"], pose["width"]), size)


# The garments whose colour `garment_coverage` traces: the identity keys of `factors.sample_identity`.
GARMENTS = ("upper", "lower")


def garment_coverage(fg: dict, pose: dict, garment: str, size: tuple[int, int] = (128, 64)) -> np.ndarray:
    """How much of each pixel's colour the garment's colour `fg[garment]` sets in `render(fg, ·, pose, size)`.

    The person is drawn twice over a black canvas, with the garment black and then white, everything
    else as in `fg`: a pixel's change is its coverage by the garment times the garment's shading
    (0.76 to 1.06), so edges, the pattern's accent and the body parts drawn over the garment count
    partly or not at all. Resizing the map with area averaging gives the coverage at a lower resolution.

    Args:
      fg: identity dict.
      pose: pose dict.
      garment: one of `GARMENTS`.
      size: (height, width). Defaults to `(128, 64)`.

    Returns:
      float32 `(height, width)` in [0, 1].

    Raises:
      ValueError: for an unknown garment or a bad `size`.
    """
    if garment not in GARMENTS:
        raise ValueError(f"Unknown garment {garment!r}; expected one of {', '.join(GARMENTS)}.")
    size = _check_size(size)
    frame = (pose["height"], pose["width"])
    canvases = []
    for level in (0, 255):
        canvas = np.zeros(size + (3,), np.float32)
        _composite(person_parts(dict(fg, **{garment: [level] * 3}), pose), frame, size, canvas)
        canvases.append(canvas)
    return np.clip((canvases[1] - canvases[0]).mean(axis=-1) / 255.0, 0.0, 1.0)
