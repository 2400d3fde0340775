"""geometry.py against NumPy / SciPy references and hand-computed poses."""

import re

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from keras_disentangle.data import geometry

H, W = 32, 16

# A frontal pose in a 32 x 16 image, (y, x); Lear (17) missing.
POSE = np.array([
    [4, 8], [7, 8], [7, 5], [11, 4], [16, 4], [7, 11], [11, 12], [16, 12], [17, 6], [23, 6],
    [29, 6], [17, 10], [23, 10], [29, 10], [3, 7], [3, 9], [4, 6], [-1, -1],
], dtype=np.float32)


def _random_poses(rng, count, height=H, width=W, missing=0.2):
    poses = rng.uniform(0, [height - 1, width - 1], size=(count, 18, 2)).astype(np.float32)
    poses[rng.random((count, 18)) < missing] = -1
    return poses


def _segment_distance(height, width, start, end):
    """Distance of every pixel centre of a height x width grid to the segment start-end (float64)."""
    rows, cols = np.mgrid[:height, :width].astype(np.float64)
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    delta = end - start
    length2 = delta @ delta
    along = (rows - start[0]) * delta[0] + (cols - start[1]) * delta[1]
    t = 0.0 if length2 == 0 else np.clip(along / length2, 0, 1)
    return np.hypot(rows - start[0] - t * delta[0], cols - start[1] - t * delta[1])


def _limb_distance(keypoints, height, width):
    """Per-pixel distance to the nearest limb whose two joints are present (inf if none)."""
    distance = np.full((height, width), np.inf)
    for a, b in geometry.LIMBS:
        if (keypoints[[a, b]] >= 0).all():
            distance = np.minimum(distance, _segment_distance(height, width, keypoints[a], keypoints[b]))
    return distance


def test_constants_are_consistent():
    assert len(geometry.LIMBS) == 23 and len(geometry.ROI_JOINTS) == len(geometry.ROI_NAMES) == 7
    perm = np.array(geometry.FLIP_PERMUTATION)
    np.testing.assert_array_equal(perm[perm], np.arange(18))  # an involution
    for index, name in enumerate(geometry.KEYPOINT_NAMES):
        mirrored = geometry.KEYPOINT_NAMES[perm[index]]
        assert mirrored == name.translate(str.maketrans("RL", "LR"))
    # The limb set maps onto itself under the flip, so masks of mirrored poses mirror.
    limbs = {frozenset(limb) for limb in geometry.LIMBS}
    assert {frozenset(perm[list(limb)].tolist()) for limb in geometry.LIMBS} == limbs


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_heatmaps_are_exact_disks(rng, radius):
    keypoints = _random_poses(rng, 3)
    keypoints[0, :4] = [[0, 0], [31, 15], [10.5, 7.25], [-1, 5]]  # corners, fractional, missing
    heatmaps = geometry.pose_heatmaps(keypoints, H, W, radius=radius).numpy()
    assert heatmaps.shape == (3, H, W, 18) and heatmaps.dtype == np.float32
    rows, cols = np.mgrid[:H, :W]
    for example in range(3):
        for joint, (y, x) in enumerate(keypoints[example]):
            expected = np.full((H, W), -1.0)
            if y >= 0 and x >= 0:
                expected[(rows - y) ** 2 + (cols - x) ** 2 <= radius ** 2] = 1.0
            np.testing.assert_array_equal(heatmaps[example, ..., joint], expected, err_msg=f"joint {joint}")
    assert (heatmaps[0, ..., 3] == -1).all()


def test_gaussian_heatmaps():
    heatmaps = geometry.pose_heatmaps(POSE, H, W, radius=3, gaussian=True).numpy()
    rows, cols = np.mgrid[:H, :W]
    y, x = POSE[6]
    expected = 2 * np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / 18.0) - 1  # 2 sigma^2, sigma = radius
    np.testing.assert_allclose(heatmaps[..., 6], expected, atol=1e-6)
    assert heatmaps[int(y), int(x), 6] == 1.0
    assert (heatmaps[..., 17] == -1).all()


def test_mask_without_close_is_the_limb_capsules(rng):
    keypoints = np.concatenate([POSE[None], _random_poses(rng, 4)])
    masks = geometry.body_mask(keypoints, H, W, radius=3, close_size=1).numpy()  # at 2, radius**2 == radius*2
    assert masks.shape == (5, H, W, 1) and set(np.unique(masks)) <= {0.0, 1.0}
    for example, mask in enumerate(masks[..., 0]):
        distance = _limb_distance(keypoints[example], H, W)
        undecided = np.abs(distance - 3) < 1e-4  # float32 vs float64 exactly on the boundary
        np.testing.assert_array_equal(mask[~undecided], (distance <= 3)[~undecided], err_msg=f"pose {example}")


def test_mask_covers_limbs_and_nothing_far(rng):
    radius, close = 3, 5
    for keypoints in np.concatenate([POSE[None], _random_poses(rng, 4)]):
        mask = geometry.body_mask(keypoints, H, W, radius=radius, close_size=close).numpy()[..., 0]
        for a, b in geometry.LIMBS:
            if (keypoints[[a, b]] >= 0).all():
                for t in np.linspace(0, 1, 50):
                    y, x = np.round(keypoints[a] + t * (keypoints[b] - keypoints[a])).astype(int)
                    assert mask[y, x] == 1, f"limb {a}-{b} pixel ({y}, {x}) not in the mask"
        # A close adds at most pixels within the window of covered ones.
        far = _limb_distance(keypoints, H, W) > radius + (close // 2) * np.sqrt(2) + 1e-4
        assert not mask[far].any()


def test_mask_close_matches_scipy_and_never_shrinks():
    # Legs pressed against the left border and the bottom: the close must keep border pixels.
    keypoints = POSE.copy()
    keypoints[:, 1] -= 4
    keypoints[10] = [31, 0]
    keypoints[13] = [31, 4]
    raw = geometry.body_mask(keypoints, H, W, radius=2, close_size=1).numpy()[..., 0] > 0
    closed = geometry.body_mask(keypoints, H, W, radius=2, close_size=5).numpy()[..., 0] > 0
    square = np.ones((5, 5), bool)
    dilated = ndimage.binary_dilation(raw, square, border_value=0)
    expected = ndimage.binary_erosion(dilated, square, border_value=1)
    np.testing.assert_array_equal(closed, expected)
    assert (closed >= raw).all() and raw[:, 0].any() and closed.sum() > raw.sum()


def test_mask_needs_both_joints_of_a_limb():
    only_arm = np.full((18, 2), -1, np.float32)
    only_arm[[2, 3]] = POSE[[2, 3]]
    mask = geometry.body_mask(only_arm, H, W, radius=2, close_size=1).numpy()[..., 0]
    np.testing.assert_array_equal(mask, _segment_distance(H, W, POSE[2], POSE[3]) <= 2)
    only_arm[3] = -1
    assert not geometry.body_mask(only_arm, H, W, radius=2).numpy().any()


def test_mask_of_a_limb_shorter_than_a_pixel_is_its_capsule():
    short = np.full((18, 2), -1, np.float32)
    short[[2, 3]] = [[10.3, 7.2], [10.9, 7.6]]  # 0.72 px: 2 pixels are within 2 of it, not of its start
    mask = geometry.body_mask(short, H, W, radius=2, close_size=1).numpy()[..., 0]
    np.testing.assert_array_equal(mask, _segment_distance(H, W, short[2], short[3]) <= 2)


def test_mask_rejects_bad_close_size_and_radius_in_one_line():
    for close_size in (4, 0):
        with pytest.raises(ValueError, match=rf"^close_size: expected a positive odd integer, got {close_size}\.$"):
            geometry.body_mask(POSE, H, W, radius=2, close_size=close_size)
    for radius in (0, -1):
        with pytest.raises(ValueError, match=rf"^radius: expected a positive number of pixels, got {radius}\.$"):
            geometry.body_mask(POSE, H, W, radius=radius)
    assert geometry.body_mask(POSE, H, W, radius=1).numpy().any()  # the smallest radius


def test_roi_boxes_of_a_hand_made_pose():
    keypoints = POSE.copy()
    keypoints[[3, 4]] = -1  # right arm: only the shoulder (7, 5) is left
    keypoints[[11, 12, 13]] = -1  # left leg: nothing
    boxes, visibility = geometry.roi_boxes(keypoints, H, W, pad=2, pad_single=3)
    pixels = boxes.numpy() * [H - 1, W - 1, H - 1, W - 1]
    np.testing.assert_array_equal(visibility.numpy(), [1, 1, 1, 1, 1, 0, 1])
    expected = {
        0: [1, 3, 9, 13],  # head: y 3..7, x 5..11, padded by 2
        1: [5, 3, 19, 14],  # upper body (joints 2, 5, 6, 7, 8): y 7..17, x 5..12
        2: [15, 4, 31, 8],  # legs, right only: y 17..29 -> 15..31 (clipped from 31), x 6 -> 4..8
        3: [5, 9, 18, 14],  # left arm: y 7..16, x 11..12
        4: [4, 2, 10, 8],  # right arm: a single joint, pad 3
        5: [0, 0, H - 1, W - 1],  # left leg: none present -> whole image
        6: [15, 4, 31, 8],  # right leg
    }
    for roi, box in expected.items():
        np.testing.assert_allclose(pixels[roi], box, atol=1e-4, err_msg=geometry.ROI_NAMES[roi])
    np.testing.assert_array_equal(boxes.numpy()[5], [0, 0, 1, 1])


def test_roi_head_raise_and_close_up_padding():
    """The authors' DeepFashion ROIs: the nose counts `head_raise` px higher, and a photo without a
    knee or ankle of one leg (a close-up) takes the close-up paddings; a batch mixes both."""
    close_up = POSE.copy()
    close_up[[12, 13]] = -1  # the left knee and ankle unseen
    boxes, _ = geometry.roi_boxes(np.stack([POSE, close_up]), H, W, pad=1, pad_single=2, head_raise=2,
                                  close_up=(3, 4, 0))
    pixels = boxes.numpy() * [H - 1, W - 1, H - 1, W - 1]
    # Whole body: head y from the raised nose (4 - 2 = 2) padded by 1; x 5..11 padded by 1.
    np.testing.assert_allclose(pixels[0, 0], [1, 4, 8, 12], atol=1e-4)
    np.testing.assert_allclose(pixels[0, 3], [6, 10, 17, 13], atol=1e-4)  # left arm y 7..16, x 11..12
    # Close-up: no raise (head y 3..7), pad 3; the left leg's single hip gets pad_single 4.
    np.testing.assert_allclose(pixels[1, 0], [0, 2, 10, 14], atol=1e-4)
    np.testing.assert_allclose(pixels[1, 5], [13, 6, 21, 14], atol=1e-4)
    # Without a raise and a close-up rule the old boxes come back.
    plain, _ = geometry.roi_boxes(POSE, H, W, pad=1, pad_single=2)
    np.testing.assert_allclose(plain.numpy()[0] * [H - 1, W - 1, H - 1, W - 1], [2, 4, 8, 12], atol=1e-4)


@pytest.mark.parametrize("legs, whole_body", [((9, 12), True), ((10, 13), True), ((9, 10), False), ((12,), False)])
def test_a_close_up_misses_every_knee_and_ankle_of_a_leg(legs, whole_body):
    """Unbatched: the rule reads the joints' own axis. The hips (8, 11) are present and do not count."""
    keypoints = POSE.copy()
    keypoints[[9, 10, 12, 13]] = -1
    keypoints[list(legs)] = POSE[list(legs)]
    boxes, _ = geometry.roi_boxes(keypoints, H, W, pad=1, pad_single=2, close_up=(3, 4, 0))
    expected, _ = geometry.roi_boxes(keypoints, H, W, pad=1, pad_single=2) if whole_body else geometry.roi_boxes(
        keypoints, H, W, pad=3, pad_single=4)
    np.testing.assert_array_equal(boxes.numpy(), expected.numpy())


def test_the_nose_is_not_raised_by_default():
    keypoints = POSE.copy()
    keypoints[[14, 15, 16]] = -1  # no eyes or ear: the nose (y 4) tops the head
    boxes, _ = geometry.roi_boxes(keypoints, H, W, pad=1, pad_single=2)
    assert boxes.numpy()[0, 0] * (H - 1) == pytest.approx(3.0)


def test_a_nose_raised_above_the_image_stays_on_row_0():
    boxes, _ = geometry.roi_boxes(POSE, H, W, pad=0, pad_single=0, head_raise=10)  # nose y 4 - 10
    assert boxes.numpy()[0, 0] == 0.0


def test_an_unpadded_box_of_a_joint_in_the_corner_is_that_pixel():
    keypoints = np.full((18, 2), -1, np.float32)
    keypoints[0] = [0, 0]  # the nose alone
    boxes, _ = geometry.roi_boxes(keypoints, H, W, pad=0, pad_single=0)
    np.testing.assert_array_equal(boxes.numpy()[0], [0, 0, 0, 0])


def test_deepfashion_presets_carry_the_authors_roi_geometry():
    from keras_disentangle import configs

    full = configs.get_config("deepfashion", "full").data.roi_options
    assert full == {"pad": 10, "pad_single": 20, "head_raise": 10, "close_up": (20, 40, 25)}
    market = configs.get_config("market", "full").data.roi_options
    assert market == {"pad": 6, "pad_single": 10, "head_raise": 0, "close_up": (6, 10, 0)}


def test_roi_boxes_crop_what_they_say():
    # crop_and_resize at the box's own size reproduces the pixels of the box.
    image = np.arange(H * W, dtype=np.float32).reshape(1, H, W, 1)
    boxes, _ = geometry.roi_boxes(POSE, H, W, pad=1, pad_single=1)
    y1, x1, y2, x2 = np.round(boxes.numpy()[4] * [H - 1, W - 1, H - 1, W - 1]).astype(int)
    crop = tf.image.crop_and_resize(image, boxes[4:5], [0], [y2 - y1 + 1, x2 - x1 + 1]).numpy()
    np.testing.assert_allclose(crop[0, ..., 0], image[0, y1:y2 + 1, x1:x2 + 1, 0], atol=1e-3)


def test_flip_twice_is_identity_and_mirrors_heatmaps_and_masks(rng):
    keypoints = np.round(_random_poses(rng, 6))
    flipped = geometry.flip_keypoints(keypoints, W)
    np.testing.assert_array_equal(geometry.flip_keypoints(flipped, W).numpy(), keypoints)
    image = rng.uniform(-1, 1, size=(6, H, W, 3)).astype(np.float32)
    np.testing.assert_array_equal(tf.image.flip_left_right(tf.image.flip_left_right(image)).numpy(), image)

    expected = np.full_like(keypoints, -1)
    for joint, source in enumerate(geometry.FLIP_PERMUTATION):
        present = (keypoints[:, source] >= 0).all(-1)
        y, x = keypoints[present, source, 0], keypoints[present, source, 1]
        expected[present, joint] = np.stack([y, W - 1 - x], -1)
    np.testing.assert_array_equal(flipped.numpy(), expected)
    heatmaps = geometry.pose_heatmaps(keypoints, H, W, radius=2).numpy()
    np.testing.assert_array_equal(
        geometry.pose_heatmaps(flipped, H, W, radius=2).numpy(),
        heatmaps[:, :, ::-1][..., list(geometry.FLIP_PERMUTATION)])
    mask = geometry.body_mask(keypoints, H, W, radius=2, close_size=3).numpy()
    np.testing.assert_array_equal(
        geometry.body_mask(flipped, H, W, radius=2, close_size=3).numpy(), mask[:, :, ::-1])


def test_pose_vector_round_trip(rng):
    keypoints = _random_poses(rng, 8)
    vector = geometry.pose_vector(keypoints, H, W).numpy()
    assert vector.shape == (8, 54)
    present = (keypoints >= 0).all(-1)
    np.testing.assert_array_equal(vector[:, 36:], present.astype(np.float32))
    coords = vector[:, :36].reshape(8, 18, 2)
    np.testing.assert_allclose(coords[present], keypoints[present] / [H, W] * 2 - 1, atol=1e-6)
    assert (coords[~present] == 0).all()
    back = geometry.keypoints_from_pose_vector(vector, H, W).numpy()
    np.testing.assert_allclose(back, keypoints, atol=1e-4)
    np.testing.assert_array_equal(
        geometry.heatmaps_from_pose_vector(vector, H, W, radius=2).numpy(),
        geometry.pose_heatmaps(back, H, W, radius=2).numpy())


def test_pose_vector_visibility_threshold():
    vector = geometry.pose_vector(POSE, H, W).numpy()
    vector[36 + 0] = 0.49
    vector[36 + 17] = 0.51  # a "present" joint decoded at (0 + 1) / 2 * size = the image centre
    vector[36 + 1] = 0.5  # "< 0.5 are -1": 0.5 itself is visible
    keypoints = geometry.keypoints_from_pose_vector(vector, H, W).numpy()
    np.testing.assert_array_equal(keypoints[0], [-1, -1])
    np.testing.assert_allclose(keypoints[17], [H / 2, W / 2])
    np.testing.assert_allclose(keypoints[1], POSE[1], atol=1e-5)
    with pytest.raises(ValueError, match=r"^vector: expected shape \[\.\.\., 54\], got \(53,\)\.$"):
        geometry.keypoints_from_pose_vector(vector[:53], H, W)


def test_scale_keypoints_and_visibility():
    keypoints = np.array([[[10, 4], [-1, -1], [0, -1], [0, 63]] + [[2, 2]] * 14], np.int64)
    scaled = geometry.scale_keypoints(keypoints, (128, 64), (64, 32)).numpy()
    # Centre to centre: (y + 0.5) * 0.5 - 0.5; a border joint stays inside (and present).
    np.testing.assert_array_equal(scaled[0, :4], [[4.75, 1.75], [-1, -1], [-1, -1], [0, 31]])
    np.testing.assert_array_equal(geometry.keypoint_visibility(keypoints).numpy()[0, :3], [1, 0, 0])


def test_batched_under_tf_function_matches_unbatched(rng):
    keypoints = _random_poses(rng, 6).reshape(2, 3, 18, 2)

    def features(points):
        boxes, visibility = geometry.roi_boxes(points, H, W, pad=2, pad_single=3)
        return (geometry.pose_heatmaps(points, H, W, 2), geometry.body_mask(points, H, W, 3, 3), boxes,
                visibility, geometry.pose_vector(points, H, W), geometry.flip_keypoints(points, W))

    signature = [tf.TensorSpec([None, None, 18, 2], tf.float32)]
    batched = tf.function(features, input_signature=signature)(keypoints)
    assert [t.shape[-1] for t in batched] == [18, 1, 4, 7, 54, 2]
    for i in range(2):
        for j in range(3):
            for full, one in zip(batched, features(keypoints[i, j])):  # divisions may round differently when vectorised
                np.testing.assert_allclose(full[i, j].numpy(), one.numpy(), rtol=0, atol=1e-6)


def test_rejects_bad_keypoint_shape():
    with pytest.raises(ValueError, match=r"^keypoints: expected shape \[\.\.\., 18, 2\], got \(17, 2\)\.$"):
        geometry.pose_heatmaps(np.zeros((17, 2)), H, W, 2)
    for radius in (0, -1):
        with pytest.raises(ValueError, match=rf"^radius: expected a positive number of pixels, got {radius}\.$"):
            geometry.pose_heatmaps(POSE, H, W, radius)


def test_sizes_below_two_pixels_are_refused_in_one_line():
    geometry.roi_boxes(POSE, 2, 2, pad=2, pad_single=3)  # the smallest size
    for height, width in ((1, 2), (2, 1)):
        message = f"height, width: expected integers >= 2, got {height} x {width}."
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            geometry.roi_boxes(POSE, height, width, pad=2, pad_single=3)


# Each ROI's joints by name: the head with the shoulders, the upper body from shoulders to hips (PG2's
# and the authors' ROI lists).
ROI_JOINT_NAMES = {
    "head": ("nose", "neck", "Rsho", "Lsho", "Reye", "Leye", "Rear", "Lear"),
    "upper_body": ("Rsho", "Relb", "Rwri", "Lsho", "Lelb", "Lwri", "Rhip", "Lhip"),
    "legs": ("Rhip", "Rkne", "Rank", "Lhip", "Lkne", "Lank"),
    "left_arm": ("Lsho", "Lelb", "Lwri"),
    "right_arm": ("Rsho", "Relb", "Rwri"),
    "left_leg": ("Lhip", "Lkne", "Lank"),
    "right_leg": ("Rhip", "Rkne", "Rank"),
}


def test_each_roi_box_follows_exactly_its_named_joints():
    # All joints at the centre; moving one joint to a corner moves the boxes of its ROIs, no other.
    poses = np.full((1 + 18, 18, 2), [H // 2, W // 2], np.float32)
    for joint in range(18):
        poses[1 + joint, joint] = [0, 0]
    boxes = geometry.roi_boxes(poses, H, W, pad=2, pad_single=3)[0].numpy()
    for joint, joint_name in enumerate(geometry.KEYPOINT_NAMES):
        moved = {name for roi, name in enumerate(geometry.ROI_NAMES)
                 if not np.array_equal(boxes[1 + joint, roi], boxes[0, roi])}
        assert moved == {roi for roi, names in ROI_JOINT_NAMES.items() if joint_name in names}, joint_name


def test_limbs_are_pg2s_joint_pairs_by_name():
    # PG2's 23 limbs (its 1-based table, spelled by joint names): a slipped index joins the wrong joints.
    expected = {frozenset(pair.split("-")) for pair in (
        "neck-Rsho", "neck-Lsho", "Rsho-Relb", "Relb-Rwri", "Lsho-Lelb", "Lelb-Lwri", "neck-Rhip", "Rhip-Rkne",
        "Rkne-Rank", "neck-Lhip", "Lhip-Lkne", "Lkne-Lank", "neck-nose", "nose-Reye", "Reye-Rear", "nose-Leye",
        "Leye-Lear", "neck-Rear", "neck-Lear", "Rhip-Lhip", "Lhip-Lsho", "Rhip-Rsho", "Rear-Lear")}
    names = geometry.KEYPOINT_NAMES
    assert len(geometry.LIMBS) == 23
    assert {frozenset((names[a], names[b])) for a, b in geometry.LIMBS} == expected
