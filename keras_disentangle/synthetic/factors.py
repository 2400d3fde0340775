"""Sampling the three factors of a synthetic person: an identity (`fg`), a camera scene (`bg`) and a
pose, and annotating a pose as the Market-1501 CSVs do. The dicts are described in
`keras_disentangle.synthetic`.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from keras_disentangle import configs
from keras_disentangle.synthetic import body
from keras_disentangle.synthetic.painting import person_parts

VIEWS = ("front", "right", "back", "left")
# Joint -> the body part that owns it, for the self-occlusion test of `sample_pose`.
_JOINT_OWNER = {3: "rarm", 4: "rarm", 6: "larm", 7: "larm", 9: "rleg", 10: "rleg", 12: "lleg", 13: "lleg"}
_SKIN = ((250, 222, 196), (236, 192, 160), (222, 170, 134), (196, 136, 100), (160, 104, 72), (108, 72, 52))
_HAIR = ((24, 20, 18), (58, 40, 30), (98, 68, 44), (196, 164, 110), (150, 148, 146), (118, 56, 32))


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
    joints = np.zeros((configs.NUM_KEYPOINTS, 3))
    joints[1] = _rot_lean(np.array([0.0, body.NECK_Y, 0.0]), lean_forward, lean_side)
    head = _rot_lean(np.array([0.0, body.NECK_Y - body.HEAD_OFFSET, 0.015]), lean_forward, lean_side)
    for side, (sho, elb, wri, hip, kne, ank), offset in ((-1.0, (2, 3, 4, 8, 9, 10), 0.0),
                                                         (1.0, (5, 6, 7, 11, 12, 13), math.pi)):
        leg_phase = phase + offset
        thigh = stride * math.sin(leg_phase) + 1.1 * crouch
        bend = 1.3 * stride * max(0.0, math.cos(leg_phase)) + 2.0 * crouch
        joints[hip] = [side * body.HIP_X, 0.0, 0.0]
        joints[kne] = joints[hip] + body.THIGH * _limb_dir(side, thigh, spread)
        joints[ank] = joints[kne] + body.SHIN * _limb_dir(side, thigh - bend, spread)
        flex, elbow, abduct = _arm_angles(rng, -arm_swing * math.sin(leg_phase))
        flex += 0.8 * crouch
        joints[sho] = _rot_lean(np.array([side * body.SHOULDER_X, body.SHOULDER_Y, 0.0]), lean_forward, lean_side)
        joints[elb] = joints[sho] + body.UPPER_ARM * _limb_dir(side, flex, abduct)
        joints[wri] = joints[elb] + body.FOREARM * _limb_dir(side, flex + elbow, abduct)
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
    top = min(head[1] - body.HEAD_RY, joints[[4, 7], 1].min() - body.HAND_R)
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
    pose["occluded"] = [bool(hidden.get(j, False)) for j in range(configs.NUM_KEYPOINTS)]
    return pose


def _self_occlusion(pose: dict) -> dict[int, bool]:
    """Limb joints covered by a later-drawn part of another owner (nominal identity)."""
    parts = person_parts(_NOMINAL_FG, pose)
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
