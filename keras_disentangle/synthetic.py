"""Procedural synthetic people with ground-truth factors (pure NumPy; no TensorFlow).

The embedded default dataset. Every image is a pure function of three JSON-serializable parameter
dicts, one per factor of the paper:

  * foreground `fg` (an identity): skin, hair colour and length, upper garment colour with a
    pattern (plain, stripes, a chest logo or an open jacket) and sleeve length, lower garment
    colour and kind (trousers, shorts or skirt), shoe colour, an optional backpack and a build.
  * background `bg` (a camera scene, `bg_id = 10 * camera + sequence`): a wall and a floor with
    gradients and textures, a few shapes, a lighting gradient and a tint. The sequences of one
    camera vary the tint, the light and the shapes around the camera's base scene, so background
    ids are shared by train and test identities as in Market-1501.
  * `pose`: a posable 3-D skeleton projected to 2-D (standing, walking at any gait phase, arm
    swing, bent or raised arms, crouching, leaning, any body yaw), placed and scaled in the box.

`render(fg_A, bg_B, pose_C, size)` therefore gives the exact target of any recombination at any
resolution, and `person_mask` gives the pixels the person covers.

Coordinates. A pose holds the FULL skeleton in pixels of the frame it was sampled for
(`pose["height"] x pose["width"]`, the dataset's stored size): `keypoints` are float (y, x) for
all 18 OpenPose joints (nose, neck, Rsho, Relb, Rwri, Lsho, Lelb, Lwri, Rhip, Rkne, Rank, Lhip,
Lkne, Lank, Reye, Leye, Rear, Lear), including joints outside the frame or hidden. Pixel `i` has
its centre at coordinate `i`; rendering or annotating at another size maps centres to centres,
`y' = (y + 0.5) * H' / H - 0.5`. `annotate` marks hidden and out-of-frame joints -1.

Pose dict keys: `height`, `width` (int, the frame), `keypoints` (18 x [y, x]), `depth` (18 floats,
pixels towards the camera, relative to the mid-hip), `head` ([y, x] centre of the head),
`scale` (pixels per standing body height), `yaw` (radians: 0 faces the camera, pi/2 faces image
right), `view` (`front`, `back`, `left` or `right`, the nearest of the four, naming the way the
person faces), `occluded` (18 bools: self-occluded joints, which `annotate` marks missing),
`action` (`stand`, `walk`, `crouch`) and `phase` (gait phase in radians).

Reference: the factor decomposition of Ma et al., "Disentangled Person Image Generation", CVPR
2018, Sec. 3 (foreground, background, pose).
"""

from __future__ import annotations

import colorsys
import functools
import json
import math
import pathlib
import shutil
import time
from typing import Callable

import numpy as np
from PIL import Image

NUM_KEYPOINTS = 18
VIEWS = ("front", "right", "back", "left")
SPLIT_DIRS = ("bounding_box_train", "bounding_box_test", "query")
FACTORS_FORMAT = "keras-disentangle-synthetic/1"
# Joints the pair recipe (Ma et al.'s and PG2's `check_valid`) requires: Rsho, Lsho, Rhip, Lhip.
PAIR_JOINTS = (2, 5, 8, 11)

# Body proportions in units of the standing height; origin at the mid-hip, Y down, X towards the
# person's left, Z forward (towards the camera when yaw = 0).
_SHOULDER_X, _SHOULDER_Y, _NECK_Y, _HIP_X = 0.115, -0.325, -0.34, 0.065
_THIGH, _SHIN, _UPPER_ARM, _FOREARM = 0.245, 0.225, 0.17, 0.15
_HEAD_RY, _HEAD_RX, _HEAD_OFFSET = 0.068, 0.052, 0.11
_TORSO_TOP_W, _TORSO_BOTTOM_W, _TORSO_DEPTH, _TORSO_ROUND = 0.125, 0.095, 0.07, 0.035
_ARM_R, _FOREARM_R, _HAND_R = 0.034, 0.028, 0.027
_THIGH_R, _KNEE_R, _ANKLE_R, _SHOE_R, _NECK_R = 0.052, 0.042, 0.03, 0.026, 0.027
# Joint -> the body part that owns it, for the self-occlusion test of `sample_pose`.
_JOINT_OWNER = {3: "rarm", 4: "rarm", 6: "larm", 7: "larm", 9: "rleg", 10: "rleg", 12: "lleg", 13: "lleg"}
_SKIN = ((250, 222, 196), (236, 192, 160), (222, 170, 134), (196, 136, 100), (160, 104, 72), (108, 72, 52))
_HAIR = ((24, 20, 18), (58, 40, 30), (98, 68, 44), (196, 164, 110), (150, 148, 146), (118, 56, 32))
_EYE = np.array([45.0, 32.0, 30.0])


# ----------------------------------------------------------------------------------------------
# Sampling.

def _colour(rng: np.random.Generator) -> list[int]:
    """A clothing colour: a third achromatic (black, grey, white), the rest any hue."""
    if rng.random() < 0.35:
        level = rng.choice([rng.uniform(18, 45), rng.uniform(85, 150), rng.uniform(200, 245)])
        return [int(np.clip(level + rng.normal(0, 4), 0, 255)) for _ in range(3)]
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.92))
    return [int(round(255 * c)) for c in rgb]


def _jitter(rng: np.random.Generator, rgb, amount: float) -> list[int]:
    return [int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in rgb]


def sample_identity(rng: np.random.Generator) -> dict:
    """Samples the foreground (clothing and body) parameters of one identity.

    Args:
      rng: `np.random.Generator`, the only source of randomness.

    Returns:
      A JSON-serializable dict: `skin`, `hair`, `upper`, `lower`, `shoes` (RGB lists of ints),
      `hair_length` (`short`, `medium`, `long`), `sleeves` (`short`, `long`), `pattern`
      (`{"kind": "plain"|"stripes"|"logo"|"jacket", "color": RGB, "period": float, "shape": str}`),
      `lower_kind` (`trousers`, `shorts`, `skirt`), `backpack` (RGB or None) and `build`
      (a width factor around 1).
    """
    kind = str(rng.choice(["plain", "stripes", "logo", "jacket"], p=[0.3, 0.25, 0.25, 0.2]))
    pattern = {
        "kind": kind,
        "color": _colour(rng),
        "period": float(rng.uniform(0.035, 0.07)),
        "shape": str(rng.choice(["circle", "square"])),
    }
    lower_kind = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.6, 0.25, 0.15]))
    return {
        "skin": _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 6),
        "hair": _jitter(rng, _HAIR[rng.integers(len(_HAIR))], 6),
        "hair_length": str(rng.choice(["short", "medium", "long"], p=[0.55, 0.2, 0.25])),
        "upper": _colour(rng),
        "sleeves": "long" if kind == "jacket" else str(rng.choice(["short", "long"])),
        "pattern": pattern,
        "lower": _colour(rng),
        "lower_kind": lower_kind,
        "shoes": _colour(rng),
        "backpack": _colour(rng) if rng.random() < 0.3 else None,
        "build": float(rng.uniform(0.9, 1.1)),
    }


def sample_camera(rng: np.random.Generator, camera: int) -> dict:
    """Samples the base scene of one camera, which its sequences vary (`sample_background`).

    Args:
      rng: `np.random.Generator`.
      camera: int, the camera number (1..9).

    Returns:
      A JSON-serializable dict: `camera`, `seed` (texture seed), `horizon` (wall/floor boundary
      as a fraction of the height), `wall` and `floor` (`top`/`bottom` or `far`/`near` RGB,
      `texture`, `cell`), and `shapes` (list of `{"kind", "box": [y0, x0, y1, x1], "color"}`,
      boxes as fractions of the image).
    """
    wall_base = _colour(rng)
    floor_base = [int(v) for v in rng.integers(70, 190) + rng.normal(0, 10, 3).clip(-20, 20)]
    shapes = []
    for _ in range(int(rng.integers(1, 5))):
        kind = str(rng.choice(["rect", "pole", "ellipse"]))
        y0, x0 = rng.uniform(0.0, 0.6), rng.uniform(-0.2, 0.9)
        if kind == "pole":
            box = [-0.1, x0, rng.uniform(0.55, 0.85), x0 + rng.uniform(0.04, 0.09)]
        else:
            box = [y0, x0, y0 + rng.uniform(0.1, 0.35), x0 + rng.uniform(0.15, 0.5)]
        shapes.append({"kind": kind, "box": [float(v) for v in box], "color": _colour(rng)})
    return {
        "camera": int(camera),
        "seed": int(rng.integers(2**31)),
        "horizon": float(rng.uniform(0.35, 0.65)),
        "wall": {"top": _jitter(rng, wall_base, 25), "bottom": _jitter(rng, wall_base, 25),
                 "texture": str(rng.choice(["bricks", "panels", "foliage", "plain"])),
                 "cell": float(rng.uniform(0.04, 0.09))},
        "floor": {"far": _jitter(rng, floor_base, 15), "near": _jitter(rng, floor_base, 15),
                  "texture": str(rng.choice(["tiles", "planks", "asphalt"])),
                  "cell": float(rng.uniform(0.5, 1.2))},
        "shapes": shapes,
    }


def sample_background(rng: np.random.Generator, camera: dict, sequence: int) -> dict:
    """Samples the background of one (camera, sequence) scene around the camera's base scene.

    Args:
      rng: `np.random.Generator`.
      camera: dict from `sample_camera`.
      sequence: int, the sequence number (1..9).

    Returns:
      The camera dict plus `sequence`, `tint` (RGB multipliers), `light` (horizontal brightness
      slope) and the sequence's shapes (the camera's, jittered, some dropped, maybe one added).
      The texture is a function of `seed` only, so it is shared by the camera's sequences.
    """
    shapes = []
    for shape in camera["shapes"]:
        if rng.random() < 0.85:
            dy, dx = rng.normal(0, 0.03, 2)
            box = [shape["box"][0] + dy, shape["box"][1] + dx, shape["box"][2] + dy, shape["box"][3] + dx]
            shapes.append({**shape, "box": [float(v) for v in box], "color": _jitter(rng, shape["color"], 12)})
    if rng.random() < 0.4:
        y0, x0 = rng.uniform(0.0, 0.6), rng.uniform(-0.2, 0.9)
        box = [y0, x0, y0 + rng.uniform(0.1, 0.3), x0 + rng.uniform(0.1, 0.4)]
        shapes.append({"kind": str(rng.choice(["rect", "ellipse"])), "box": [float(v) for v in box],
                       "color": _colour(rng)})
    tint = np.clip(rng.normal(1.0, 0.06, 3) * rng.uniform(0.8, 1.15), 0.6, 1.3)
    return {**camera, "sequence": int(sequence), "shapes": shapes,
            "tint": [float(v) for v in tint], "light": float(rng.uniform(-0.25, 0.25))}


def _rot_lean(v: np.ndarray, forward: float, side: float) -> np.ndarray:
    """Rotates body-frame points `(..., 3)` about the mid-hip: forward then sideways lean."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    y, z = y * math.cos(forward) + z * math.sin(forward), -y * math.sin(forward) + z * math.cos(forward)
    x, y = x * math.cos(side) - y * math.sin(side), x * math.sin(side) + y * math.cos(side)
    return np.stack([x, y, z], axis=-1)


def _limb_dir(side: float, flex: float, abduct: float) -> np.ndarray:
    """Unit direction of a limb hanging down, swung forward by `flex` and out by `abduct`."""
    return np.array([side * math.sin(abduct) * math.cos(flex), math.cos(abduct) * math.cos(flex), math.sin(flex)])


def _arm_angles(rng: np.random.Generator, swing: float) -> tuple[float, float, float]:
    """(flex, elbow bend, abduction) of one arm: swinging, bent, raised or held out."""
    mode = rng.choice(4, p=[0.8, 0.12, 0.04, 0.04])
    if mode == 0:
        return swing, 0.15 + 0.5 * max(0.0, swing) + rng.uniform(0, 0.2), rng.uniform(0.08, 0.22)
    if mode == 1:
        return rng.uniform(0.1, 0.6), rng.uniform(1.2, 1.9), rng.uniform(0.05, 0.2)
    if mode == 2:
        return rng.uniform(-0.2, 0.4), rng.uniform(0.0, 0.9), rng.uniform(1.6, 2.6)
    return rng.uniform(-0.3, 0.5), rng.uniform(0.1, 0.6), rng.uniform(0.4, 0.9)


def _skeleton(rng: np.random.Generator, action: str, phase: float) -> tuple[np.ndarray, np.ndarray]:
    """The 3-D joints `(18, 3)` in body units (face joints left at 0) and the head centre `(3,)`."""
    stride = {"walk": rng.uniform(0.22, 0.42), "stand": rng.uniform(0.0, 0.06), "crouch": 0.0}[action]
    crouch = rng.uniform(0.4, 0.9) if action == "crouch" else 0.0
    spread = rng.uniform(0.0, 0.08) if action == "stand" else rng.uniform(0.0, 0.03)
    lean_forward = {"walk": rng.uniform(0.0, 0.12), "stand": rng.uniform(-0.05, 0.08),
                    "crouch": rng.uniform(0.3, 0.6)}[action] + 0.3 * crouch
    lean_side = rng.normal(0.0, 0.04)
    arm_swing = stride * rng.uniform(0.8, 1.4) if action == "walk" else rng.uniform(0.0, 0.1)
    joints = np.zeros((NUM_KEYPOINTS, 3))
    joints[1] = _rot_lean(np.array([0.0, _NECK_Y, 0.0]), lean_forward, lean_side)
    head = _rot_lean(np.array([0.0, _NECK_Y - _HEAD_OFFSET, 0.015]), lean_forward, lean_side)
    for side, (sho, elb, wri, hip, kne, ank), offset in ((-1.0, (2, 3, 4, 8, 9, 10), 0.0),
                                                         (1.0, (5, 6, 7, 11, 12, 13), math.pi)):
        leg_phase = phase + offset
        thigh = stride * math.sin(leg_phase) + 1.1 * crouch
        bend = 1.3 * stride * max(0.0, math.cos(leg_phase)) + 2.0 * crouch
        joints[hip] = [side * _HIP_X, 0.0, 0.0]
        joints[kne] = joints[hip] + _THIGH * _limb_dir(side, thigh, spread)
        joints[ank] = joints[kne] + _SHIN * _limb_dir(side, thigh - bend, spread)
        flex, elbow, abduct = _arm_angles(rng, -arm_swing * math.sin(leg_phase))
        flex += 0.8 * crouch
        joints[sho] = _rot_lean(np.array([side * _SHOULDER_X, _SHOULDER_Y, 0.0]), lean_forward, lean_side)
        joints[elb] = joints[sho] + _UPPER_ARM * _limb_dir(side, flex, abduct)
        joints[wri] = joints[elb] + _FOREARM * _limb_dir(side, flex + elbow, abduct)
    return joints, head


def _face_joints(head: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Nose, Reye, Leye, Rear, Lear as body-frame points `(5, 3)`, and whether each faces the camera."""
    offsets = np.array([[0.0, 0.012, 0.06], [-0.022, -0.004, 0.05], [0.022, -0.004, 0.05],
                        [-0.052, 0.0, -0.005], [0.052, 0.0, -0.005]])
    normals = np.array([[0.0, 0.0, 1.0], [-0.4, 0.0, 0.92], [0.4, 0.0, 0.92], [-1.0, 0.0, -0.1], [1.0, 0.0, -0.1]])
    facing = -normals[:, 0] * math.sin(yaw) + normals[:, 2] * math.cos(yaw)
    return head + offsets, facing > np.array([-0.2, 0.25, 0.25, -0.35, -0.35])


# The identity the self-occlusion test of `sample_pose` assumes, so that annotations depend on the
# pose alone (colours are irrelevant there).
_NOMINAL_FG = {"skin": [0, 0, 0], "hair": [0, 0, 0], "hair_length": "short", "upper": [0, 0, 0],
               "sleeves": "long", "pattern": {"kind": "plain", "color": [0, 0, 0], "period": 0.05,
                                              "shape": "circle"},
               "lower": [0, 0, 0], "lower_kind": "trousers", "shoes": [0, 0, 0], "backpack": None,
               "build": 1.0}


def sample_pose(rng: np.random.Generator, height: int = 128, width: int = 64) -> dict:
    """Samples a pose and its placement in a `height x width` box.

    The person's top (head or raised hand) and bottom (soles) are fitted to a Market-like box
    with jittered margins and horizontal position; about one pose in six is placed so that the
    feet, the head or one side leave the frame. Self-occlusion (an arm behind the torso, a leg
    behind the other, the face seen from behind) is decided here with a nominal build and stored
    in `occluded`, so the annotation depends on the pose only.

    Args:
      rng: `np.random.Generator`.
      height: int, the height of the frame the coordinates refer to. Defaults to 128.
      width: int, its width. Defaults to 64.

    Returns:
      The pose dict described in the module docstring (JSON-serializable).
    """
    view = int(rng.choice(4, p=[0.3, 0.2, 0.3, 0.2]))
    yaw = math.remainder(view * math.pi / 2 + rng.normal(0.0, 0.3), 2 * math.pi)
    action = str(rng.choice(["stand", "walk", "crouch"], p=[0.25, 0.67, 0.08]))
    phase = float(rng.uniform(0.0, 2 * math.pi))
    joints, head = _skeleton(rng, action, phase)
    face, facing = _face_joints(head, yaw)
    joints[[0, 14, 15, 16, 17]] = face
    cos, sin = math.cos(yaw), math.sin(yaw)
    image_x = joints[:, 0] * cos + joints[:, 2] * sin
    depth = -joints[:, 0] * sin + joints[:, 2] * cos
    head_x = head[0] * cos + head[2] * sin
    top = min(head[1] - _HEAD_RY, joints[[4, 7], 1].min() - _HAND_R)
    bottom = joints[[10, 13], 1].max() + 0.045
    event = rng.random()
    top_px = height * (rng.uniform(-0.08, -0.03) if event < 0.04 else rng.uniform(0.005, 0.05))
    bottom_px = height * (rng.uniform(1.04, 1.18) if 0.04 <= event < 0.14 else rng.uniform(0.955, 0.995))
    shift = rng.choice([-1, 1]) * rng.uniform(0.2, 0.35) if 0.14 <= event < 0.18 else rng.normal(0, 0.04)
    scale = (bottom_px - top_px) / (bottom - top)
    centre_x = width * (0.5 + shift) - 0.5 - scale * 0.5 * (image_x[1] + (image_x[8] + image_x[11]) / 2)
    pose = {
        "height": int(height),
        "width": int(width),
        "keypoints": [[float(top_px - 0.5 + (y - top) * scale), float(centre_x + scale * x)]
                      for y, x in zip(joints[:, 1], image_x)],
        "depth": [float(scale * z) for z in depth],
        "head": [float(top_px - 0.5 + (head[1] - top) * scale), float(centre_x + scale * head_x)],
        "scale": float(scale),
        "yaw": float(yaw),
        "view": VIEWS[int(round(yaw / (math.pi / 2))) % 4],
        "action": action,
        "phase": phase,
    }
    hidden = _self_occlusion(pose) | {j: not visible for j, visible in zip((0, 14, 15, 16, 17), facing)}
    pose["occluded"] = [bool(hidden.get(j, False)) for j in range(NUM_KEYPOINTS)]
    return pose


def _self_occlusion(pose: dict) -> dict[int, bool]:
    """Limb joints covered by a later-drawn part of another owner (nominal identity)."""
    parts = _person_parts(_NOMINAL_FG, pose)
    last = {part.owner: i for i, part in enumerate(parts)}
    joints = list(_JOINT_OWNER)
    points = np.asarray([pose["keypoints"][j] for j in joints])
    point_y, point_x = points[:, :1], points[:, 1:]
    hidden = np.zeros(len(joints), bool)
    for i, part in enumerate(parts):
        # Only parts drawn after a joint's own limb, and not of that limb, can hide it.
        later = np.array([i > last[_JOINT_OWNER[j]] and part.owner != _JOINT_OWNER[j] for j in joints])
        if later.any():
            hidden |= later & (part.sdf(point_y, point_x)[0][:, 0] < -0.5)
    return dict(zip(joints, hidden.tolist()))


def annotate(pose: dict, height: int | None = None, width: int | None = None) -> np.ndarray:
    """The Market-style annotation of a pose: rounded (y, x) per joint, -1 where missing.

    A joint is missing when `pose["occluded"]` says so or when it falls outside the frame.

    Args:
      pose: a pose dict (`sample_pose`).
      height: int, the image height to annotate for. Defaults to `pose["height"]`.
      width: int, the image width. Defaults to `pose["width"]`.

    Returns:
      int64 `(18, 2)`, (y, x) pixel indices, -1 for missing joints.
    """
    height = pose["height"] if height is None else height
    width = pose["width"] if width is None else width
    points = np.asarray(pose["keypoints"], dtype=np.float64)
    scale = np.array([height / pose["height"], width / pose["width"]])
    points = np.floor((points + 0.5) * scale - 0.5 + 0.5).astype(np.int64)
    inside = (points >= 0).all(axis=1) & (points[:, 0] < height) & (points[:, 1] < width)
    missing = ~inside | np.asarray(pose["occluded"], dtype=bool)
    points[missing] = -1
    return points


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
    chest_dx = _project(pose, (0.0, 0.0, _TORSO_DEPTH))[1]

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
    ry, rx = _HEAD_RY * pose["scale"], _HEAD_RX * pose["scale"]
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
    arm_r, fore_r = _ARM_R * s * build, _FOREARM_R * s * build
    parts = [_capsule(owner, sho, elb, arm_r, fore_r, cloth if sleeve else skin),
             _capsule(owner, elb, wri, fore_r, fore_r * 0.9, cloth if sleeve else skin)]
    if not sleeve:
        cuff = [sho[0] + 0.5 * (elb[0] - sho[0]), sho[1] + 0.5 * (elb[1] - sho[1])]
        parts.append(_capsule(owner, sho, cuff, arm_r * 1.12, arm_r * 1.08, cloth))
    direction = np.subtract(wri, elb)
    direction = direction / (np.hypot(*direction) + 1e-9)
    hand = [wri[0] + direction[0] * 0.02 * s, wri[1] + direction[1] * 0.02 * s]
    hand_r = _HAND_R * s * build
    parts.append(_capsule(owner, hand, hand, hand_r, hand_r, skin))
    return parts


def _leg_parts(fg, pose, side: str) -> list[_Part]:
    s, build, kp = pose["scale"], fg["build"], pose["keypoints"]
    hip, kne, ank = (kp[8], kp[9], kp[10]) if side == "r" else (kp[11], kp[12], kp[13])
    owner = side + "leg"
    covered = fg["lower_kind"] == "trousers"
    leg = fg["lower"] if covered else fg["skin"]
    thigh_r, knee_r, ankle_r = _THIGH_R * s * build, _KNEE_R * s * build, _ANKLE_R * s * build
    parts = [_capsule(owner, hip, kne, thigh_r, knee_r, leg),
             _capsule(owner, kne, ank, knee_r, ankle_r, leg)]
    if fg["lower_kind"] == "shorts":
        hem = [hip[0] + 0.6 * (kne[0] - hip[0]), hip[1] + 0.6 * (kne[1] - hip[1])]
        parts.append(_capsule(owner, hip, hem, thigh_r * 1.1, knee_r * 1.15, fg["lower"]))
    heel_dy, heel_dx = _project(pose, (0.0, 0.028, -0.012))
    toe_dy, toe_dx = _project(pose, (0.0, 0.032, 0.075))
    shoe_r = _SHOE_R * s * build
    parts.append(_capsule(owner, [ank[0] + heel_dy, ank[1] + heel_dx], [ank[0] + toe_dy, ank[1] + toe_dx],
                          shoe_r, shoe_r * 0.9, fg["shoes"]))
    return parts


def _person_parts(fg, pose) -> list[_Part]:
    """Every primitive of the person, in drawing order (far to near)."""
    s, build, kp, yaw = pose["scale"], fg["build"], pose["keypoints"], pose["yaw"]
    depth = pose["depth"]
    neck, mid_hip = np.asarray(kp[1]), (np.asarray(kp[8]) + np.asarray(kp[11])) / 2
    spine = mid_hip - neck
    top, bottom = neck + 0.044 * spine, mid_hip + 0.09 * spine
    cos, sin = abs(math.cos(yaw)), abs(math.sin(yaw))
    top_w = (_TORSO_TOP_W * cos + _TORSO_DEPTH * sin) * s * build
    bottom_w = (_TORSO_BOTTOM_W * cos + _TORSO_DEPTH * sin) * s * build
    length = float(np.hypot(*(bottom - top)))
    torso = _trapezoid("torso", top, bottom, top_w, bottom_w, _TORSO_ROUND * s * build,
                       _torso_paint(fg, pose, length))
    lower = fg["lower"]
    hip_r = _THIGH_R * s * build * 1.05
    waist = [_capsule("waist", kp[8], kp[11], hip_r, hip_r, lower)]
    if fg["lower_kind"] == "skirt":
        hem = mid_hip + np.array([0.24 * s, 0.0])
        hem_w = (0.16 * cos + 0.12 * sin) * s * build
        waist.append(_trapezoid("waist", bottom - np.array([0.06 * s, 0.0]), hem, bottom_w, hem_w,
                                0.02 * s, lambda ys, xs, extra: _shade(np.abs(extra[0]), lower)))
    # Long hair and a backpack hang behind the torso: hidden in front views, on top from behind.
    behind = []
    if fg["backpack"] is not None:
        dy, dx = _project(pose, (0.0, 0.0, -(_TORSO_DEPTH + 0.045) * build))
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
    neck_part = _capsule("neck", kp[1], pose["head"], _NECK_R * s * build, _NECK_R * s * build, fg["skin"])
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
# Backgrounds: rendered at twice the size and averaged (anti-aliasing), cached per (params, size).

def _noise(seed: int, cells: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in [0, 1]: a seeded grid of `cells`, bilinearly resampled to `size`."""
    grid = np.random.default_rng(seed).random((cells[0] + 1, cells[1] + 1))
    gy = (np.arange(size[0]) + 0.5) / size[0] * cells[0]
    gx = (np.arange(size[1]) + 0.5) / size[1] * cells[1]
    iy, ix = np.minimum(gy.astype(int), cells[0] - 1), np.minimum(gx.astype(int), cells[1] - 1)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    a, b = grid[iy][:, ix], grid[iy][:, ix + 1]
    c, d = grid[iy + 1][:, ix], grid[iy + 1][:, ix + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _lines(coord: np.ndarray, period: float, width_px: float, px_per_unit) -> np.ndarray:
    """Soft line intensity in [0, 1] at the integer multiples of `period` of `coord`."""
    distance = np.abs(np.mod(coord / period + 0.5, 1.0) - 0.5) * period * px_per_unit
    return np.clip(width_px / 2 - distance + 0.5, 0.0, 1.0)


def _background(bg: dict, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    y = ((np.arange(height) + 0.5) / height)[:, None]
    x = ((np.arange(width) + 0.5) / width)[None, :] * (width / height)  # in heights
    horizon, seed = bg["horizon"], bg["seed"]
    wall, floor = bg["wall"], bg["floor"]
    t = np.clip(y / horizon, 0.0, 1.0)[..., None]
    wall_rgb = np.asarray(wall["top"], np.float32) * (1 - t) + np.asarray(wall["bottom"], np.float32) * t
    wall_rgb = np.broadcast_to(wall_rgb, (height, width, 3))
    cell = wall["cell"]
    if wall["texture"] == "bricks":
        row = np.floor(y / cell)
        brick_x = x + 0.5 * 2.2 * cell * np.mod(row, 2)
        column = np.floor(brick_x / (2.2 * cell))
        table = np.random.default_rng(seed).uniform(0.85, 1.1, 97)
        tone = table[np.mod(row * 31 + column * 7, 97).astype(int)]
        mortar = np.maximum(_lines(y, cell, 1.0, height), _lines(brick_x, 2.2 * cell, 1.0, height))
        wall_rgb = wall_rgb * (tone * (1 - 0.35 * mortar))[..., None]
    elif wall["texture"] == "panels":
        seams = _lines(x, 3 * cell, 1.5, height) * np.ones_like(y)
        wall_rgb = wall_rgb * (1 - 0.3 * seams)[..., None]
    elif wall["texture"] == "foliage":
        leaves = 0.6 * _noise(seed, (24, 12), size) + 0.4 * _noise(seed + 1, (48, 24), size)
        wall_rgb = wall_rgb * (0.6 + 0.7 * leaves)[..., None]
    # Perspective floor: rows below the horizon map to ground depth 1 / (y - horizon).
    below = np.maximum(y - horizon, 1e-3)
    depth = 0.25 / below
    ground_x = (x - 0.5 * width / height) * depth
    near = np.clip(below / (1 - horizon), 0.0, 1.0)[..., None]
    floor_rgb = np.asarray(floor["far"], np.float32) * (1 - near) + np.asarray(floor["near"], np.float32) * near
    px_per_depth = height * below * below / 0.25
    fade = np.clip(below * 8, 0.0, 1.0)
    if floor["texture"] == "tiles":
        grout = np.maximum(_lines(depth, floor["cell"], 1.0, px_per_depth),
                           _lines(ground_x, floor["cell"], 1.0, height / depth))
        floor_rgb = floor_rgb * (1 - 0.3 * grout * fade)[..., None]
    elif floor["texture"] == "planks":
        seams = _lines(ground_x, 0.5 * floor["cell"], 1.0, height / depth) * np.ones_like(y)
        floor_rgb = floor_rgb * (1 - 0.25 * seams * fade)[..., None]
    else:
        grain = _noise(seed + 2, (64, 32), size)
        floor_rgb = floor_rgb * (0.88 + 0.24 * grain)[..., None]
    ground = np.clip((y - horizon) * height + 0.5, 0.0, 1.0)[..., None]
    image = wall_rgb * (1 - ground) + floor_rgb * ground
    for shape in bg["shapes"]:
        y0, x0, y1, x1 = shape["box"]
        x0, x1 = x0 * width / height, x1 * width / height
        if shape["kind"] == "ellipse":
            cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
            d = (np.hypot((y - cy) / ry, (x - cx) / rx) - 1.0) * min(ry, rx)
        else:
            d = np.maximum(np.maximum(y0 - y, y - y1), np.maximum(x0 - x, x - x1))
        alpha = np.clip(0.5 - d * height, 0.0, 1.0)[..., None]
        shade = 1.0 - 0.15 * np.clip((y - y0) / max(y1 - y0, 1e-3), 0.0, 1.0)[..., None]
        image = image + alpha * (np.asarray(shape["color"], np.float32) * shade - image)
    light = 1.0 + bg["light"] * (x / (width / height) - 0.5) * 2
    image = image * light[..., None] * np.asarray(bg["tint"], np.float32)
    return np.clip(image, 0.0, 255.0)


@functools.lru_cache(maxsize=256)
def _background_cached(bg_json: str, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    big = _background(json.loads(bg_json), (2 * height, 2 * width))
    small = big.reshape(height, 2, width, 2, 3).mean(axis=(1, 3)).astype(np.float32)
    small.flags.writeable = False
    return small


def render_background(bg: dict, size: tuple[int, int] = (128, 64)) -> np.ndarray:
    """The background alone, float32 `(H, W, 3)` in [0, 255]; a pure function of `bg` and `size`."""
    return _background_cached(json.dumps(bg, sort_keys=True), tuple(int(v) for v in size))


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
    _composite(_person_parts(fg, pose), (pose["height"], pose["width"]), size, canvas)
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
    return _composite(_person_parts(fg, pose), (pose["height"], pose["width"]), size)


# ----------------------------------------------------------------------------------------------
# Dataset generation in the Market-1501 layout.

def _annotation_row(name: str, keypoints: np.ndarray) -> str:
    return f"{name}: {json.dumps([int(v) for v in keypoints[:, 0]])}: {json.dumps([int(v) for v in keypoints[:, 1]])}\n"


def _prepare_out_dir(out: pathlib.Path) -> None:
    """Creates the layout; replaces an earlier synthetic set but never a foreign dataset."""
    used = [d for d in SPLIT_DIRS if (out / d).is_dir() and any((out / d).iterdir())]
    if used and not (out / "factors.json").is_file():
        raise ValueError(f"`out_dir` {str(out)!r} already holds images in {used} but no factors.json; "
                         "expected an empty directory or an earlier synthetic dataset.")
    for d in SPLIT_DIRS:
        shutil.rmtree(out / d, ignore_errors=True)
        (out / d).mkdir(parents=True)


def generate(out_dir, ids: int = 20, images_per_id: int = 8, cameras: int = 6, height: int = 128,
             width: int = 64, seed: int = 0,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Writes a synthetic dataset in the Market-1501 layout with its ground-truth factors.

    Identities `0001..ids` are split into disjoint train and test halves. Each image picks a
    camera and one of its 2-3 sequences, so every background id serves train and test people.
    Each test identity gives about a quarter of its images (at least one, keeping one) to
    `query/` (box index 00, no annotation row), the rest to `bounding_box_test/`.
    Output for a given seed is byte-identical across runs.

    Files: `bounding_box_train/`, `bounding_box_test/`, `query/` (JPEG quality 95, names
    `PPPP_cCsS_FFFFFF_NN.jpg`), `market-annotation-{train,test}.csv`, `market-pairs-test.csv`
    (ordered same-identity test pairs with Rsho, Lsho, Rhip, Lhip present) and `factors.json`.

    Args:
      out_dir: str or path, the dataset root (created; an earlier synthetic set there is replaced).
      ids: int >= 2, number of identities. Defaults to 20.
      images_per_id: int >= 1, images per identity. Defaults to 8.
      cameras: int in 1..9, number of cameras. Defaults to 6.
      height: int >= 16, image height. Defaults to 128.
      width: int >= 8, image width. Defaults to 64.
      seed: int, the seed of everything. Defaults to 0.
      progress: optional callable `(done, total)` called after every image.

    Returns:
      dict with `counts` (images per folder), `pairs`, `images`, `seconds`, `images_per_second`
      (wall clock) and `images_per_cpu_second` (this process's CPU time, which shared machines
      do not distort).

    Raises:
      ValueError: naming an argument out of range or a non-empty foreign `out_dir`.
    """
    for name, value, low, high in (("ids", ids, 2, 9999), ("images_per_id", images_per_id, 1, 99),
                                   ("cameras", cameras, 1, 9), ("height", height, 16, 4096),
                                   ("width", width, 8, 4096)):
        if not low <= value <= high:
            raise ValueError(f"`{name}` must be in [{low}, {high}], got {value!r}.")
    start, start_cpu = time.perf_counter(), time.process_time()
    out = pathlib.Path(out_dir)
    _prepare_out_dir(out)
    rng = np.random.default_rng(seed)
    backgrounds = {}
    for camera in range(1, cameras + 1):
        base = sample_camera(rng, camera)
        for sequence in range(1, int(rng.integers(2, 4)) + 1):
            backgrounds[10 * camera + sequence] = sample_background(rng, base, sequence)
    scenes = sorted(backgrounds)
    person_ids = list(range(1, ids + 1))
    test_ids = set(rng.permutation(person_ids)[: ids // 2].tolist())
    identities = {pid: sample_identity(rng) for pid in person_ids}
    frames = {bg_id: int(rng.integers(0, 5000)) for bg_id in scenes}
    images, rows = {}, {"train": [], "test": []}
    counts = dict.fromkeys(SPLIT_DIRS, 0)
    test_keypoints = {}
    total, done = ids * images_per_id, 0
    for pid in person_ids:
        queries = min(max(1, images_per_id // 4), images_per_id - 1) if pid in test_ids else 0
        for k in range(images_per_id):
            bg_id = scenes[int(rng.integers(len(scenes)))]
            frames[bg_id] += int(rng.integers(1, 400))
            folder = "query" if k < queries else ("bounding_box_test" if pid in test_ids else "bounding_box_train")
            box = 0 if folder == "query" else int(rng.integers(1, 9))
            name = f"{pid:04d}_c{bg_id // 10}s{bg_id % 10}_{frames[bg_id]:06d}_{box:02d}.jpg"
            pose = sample_pose(rng, height, width)
            image = render(identities[pid], backgrounds[bg_id], pose, (height, width))
            # Full-resolution chroma (4:4:4) keeps the stored photo within ~2 grey levels (mean) of its render.
            Image.fromarray(image).save(out / folder / name, format="JPEG", quality=95, subsampling=0)
            images[name] = {"fg_id": pid, "bg_id": bg_id, "pose": pose}
            counts[folder] += 1
            if folder != "query":
                keypoints = annotate(pose)
                split = "test" if folder == "bounding_box_test" else "train"
                rows[split].append(_annotation_row(name, keypoints))
                if split == "test":
                    test_keypoints[name] = keypoints
            done += 1
            if progress is not None:
                progress(done, total)
    for split in ("train", "test"):
        with open(out / f"market-annotation-{split}.csv", "w", newline="\n") as f:
            f.write("name:keypoints_y:keypoints_x\n")
            f.writelines(sorted(rows[split]))
    valid = sorted(n for n, kp in test_keypoints.items() if (kp[list(PAIR_JOINTS)] >= 0).all())
    pairs = [(a, b) for a in valid for b in valid if a != b and a[:4] == b[:4]]
    with open(out / "market-pairs-test.csv", "w", newline="\n") as f:
        f.write("from,to\n")
        f.writelines(f"{a},{b}\n" for a, b in pairs)
    factors = {"format": FACTORS_FORMAT, "seed": int(seed), "height": int(height), "width": int(width),
               "identities": {str(k): v for k, v in identities.items()},
               "backgrounds": {str(k): v for k, v in backgrounds.items()},
               "images": images}
    with open(out / "factors.json", "w", newline="\n") as f:
        json.dump(factors, f, separators=(",", ":"))
        f.write("\n")
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    return {"counts": counts, "pairs": len(pairs), "images": done, "seconds": seconds,
            "images_per_second": done / max(seconds, 1e-9),
            "images_per_cpu_second": done / max(cpu_seconds, 1e-9)}
