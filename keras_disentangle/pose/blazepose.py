"""BlazePose (MediaPipe Pose, full model) run with the TFLite interpreter, without mediapipe.

The `mediapipe` wheels ship the two networks of MediaPipe Pose as plain `.tflite` files (Apache-2.0):

* `pose_detection.tflite`: an SSD over a 224x224 letterboxed image in [-1, 1]; 2254 anchors, each
  with a score logit and 12 regressed values (a face box and 4 keypoints: mid-hip centre, a point
  encoding full-body size and rotation, mid-shoulder centre, one for the upper body).
* `pose_landmark_full.tflite`: 39 landmarks (x, y, z, visibility logit, presence logit; the first
  33 are the body) on a 256x256 crop in [0, 1] of a rotated square region of interest, and a pose
  presence score.

    python -m keras_disentangle.pose.blazepose --out=weights/blazepose

fetches the wheel with pip and copies the two files out (`blazepose_models`, which also says where
they are kept). Nothing is downloaded at run time: `BlazePose` only reads that folder.

The glue between the two networks follows MediaPipe's graphs (`pose_detection_cpu.pbtxt`,
`pose_detection_to_roi.pbtxt`, `pose_landmark_by_roi_cpu.pbtxt`,
`tensors_to_pose_landmarks_and_segmentation.pbtxt`): SSD anchors (5 layers, strides 8, 16, 32, 32,
32, scales 0.1484375 to 0.75, fixed size, one interpolated anchor per cell), box decoding scaled by
224, sigmoid scores clipped at +-100, weighted non-maximum suppression at IoU 0.3; the region of
interest is centred on the mid-hip keypoint, 2 x |kp1 - kp0| wide, turned so that kp0 -> kp1
points up, scaled by 1.25 and made square on its long side; each landmark is refined on the 64x64
heatmap (the sigmoid-weighted mean of a 7x7 window, when its peak is >= 0.5); landmarks are
thresholded on the pose presence score 0.5.

Not in MediaPipe: where the region leaves the photo, the crop repeats the photo's edge pixels (not
black), and test-time augmentation: every region is also run on the mirrored photo (left and right
swapped back) and at a few scales around it. The views whose presence is within TTA_PRESENCE_MARGIN
of the best are merged: the median position per landmark, the mean visibility and presence. For a
photo taken to be framed on one person, the middle region and its mirror, or the detector on the
photo in context, decide whether there is one (`BlazePose.__call__`), never the best of the views.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np
from absl import flags
from PIL import Image

from keras_disentangle import cli
# The model files; their names stay importable from here (`blazepose.models_dir`, ...).
from keras_disentangle.pose.blazepose_models import (  # noqa: F401
    DEFAULT_MODELS_DIR,
    DETECTOR_FILE,
    FETCH_COMMAND,
    LANDMARK_FILE,
    MODEL_FILES,
    WHEEL_REQUIREMENT,
    fetch_models,
    models_dir,
)

NUM_LANDMARKS = 33
DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
DETECTION_THRESHOLD = 0.5
NMS_IOU = 0.3
PRESENCE_THRESHOLD = 0.5
ROI_SCALE = 1.25
HEATMAP_KERNEL = 7
HEATMAP_MIN_CONFIDENCE = 0.5
# A person filling a crop's height: the ROI MediaPipe would build spans about 1.25-1.5 x their height.
# The middle one alone decides whether there is a person; all three refine the joints.
WHOLE_FRAME_SCALES = (1.3, 1.4, 1.5)
# The detector's region of interest is also tried this much smaller and larger.
DETECTION_SCALES = (0.9, 1.0, 1.1)
# Views this far below the most confident one are left out of the merge (a view that lost the person).
TTA_PRESENCE_MARGIN = 0.1
# A whole-frame region holds a person when the mean presence of it and its mirror reaches this, or
# when the detector finds one in the photo set in a canvas CONTEXT_CANVAS x its long side (edge pixels
# repeated): the detector, trained on people with context, misses people filling the frame. MediaPipe's
# 0.5 on one view called 17 of 192 rendered empty backgrounds a person (their pair mean reached 0.88).
FRAMED_PRESENCE = 0.9
CONTEXT_CANVAS = 3.0
# Landmark index in the mirrored photo of each landmark (the person's left and right swap).
MIRRORED = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9] + [i + 1 - 2 * (i % 2 == 0) for i in range(11, 33)])


def _interpreter(path: pathlib.Path):
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: BlazePose model file missing; fetch it with "
            f"`{FETCH_COMMAND.format(dir=path.parent)}`")
    from ai_edge_litert.interpreter import Interpreter  # Deferred: the fetch command above needs none.

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def ssd_anchors() -> np.ndarray:
    """The detector's 2254 anchor centres `(x, y)` in [0, 1] (fixed-size anchors: w = h = 1).

    Consecutive layers with the same stride share one feature map; each layer adds, per cell, one
    anchor for aspect ratio 1 and one interpolated-scale anchor, so a cell of stride 8 has 2 anchors,
    of stride 16 has 2 and of stride 32 has 6 (three layers).
    """
    strides = (8, 16, 32, 32, 32)
    centres = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        per_cell = 2 * (last - layer)
        size = math.ceil(DETECTOR_SIZE / strides[layer])
        ys, xs = np.meshgrid((np.arange(size) + 0.5) / size, (np.arange(size) + 0.5) / size, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=-1)
        centres.append(np.repeat(cells, per_cell, axis=0))
        layer = last
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = ssd_anchors()


@dataclasses.dataclass(frozen=True)
class Detection:
    """One person found by the detector, in pixels of the input image.

    Attributes:
      score: float. Detector confidence in [0, 1].
      keypoints: float32 [4, 2] (x, y): mid-hip, full-body size/rotation point, mid-shoulder,
        upper-body point.
      roi: (centre_x, centre_y, side, rotation): the square region of interest of the landmark model
        (rotation in radians, clockwise in image coordinates).
    """

    score: float
    keypoints: np.ndarray
    roi: tuple[float, float, float, float]

    @property
    def size(self) -> float:
        return self.roi[2]


@dataclasses.dataclass(frozen=True)
class Landmarks:
    """33 BlazePose landmarks in pixels of the input image.

    Attributes:
      xy: float32 [33, 2] (x, y), continuous pixel coordinates (pixel k spans [k, k + 1)).
      visibility, presence: float32 [33] in [0, 1], the mean over the merged views.
      detection: the Detection the landmarks were found from.
      num_people: int. How many people the detector found (the largest was used).
    """

    xy: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    detection: Detection
    num_people: int


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, values: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """MediaPipe's WEIGHTED suppression: each cluster (IoU > NMS_IOU with its best box) is averaged,
    weighted by score. `boxes` [N, 4] (x1, y1, x2, y2); returns (best score, averaged values)."""
    order = np.argsort(-scores)
    remaining = list(order)
    out = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while remaining:
        best = remaining[0]
        rest = np.array(remaining)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(area[best] + area[rest] - inter, 1e-9)
        cluster = rest[iou > NMS_IOU]
        weights = scores[cluster][:, None]
        out.append((float(scores[best]), (values[cluster] * weights).sum(0) / weights.sum()))
        remaining = [i for i in remaining if i not in set(cluster.tolist())]
    return out


class BlazePose:
    """The two BlazePose networks; `__call__(image)` gives the landmarks of the largest person.

    Args:
      directory: folder with `pose_detection.tflite` and `pose_landmark_full.tflite`; defaults to
        `models_dir()`.

    Raises:
      FileNotFoundError: if a model file is missing (the message names the command fetching it).
    """

    def __init__(self, directory=None):
        directory = pathlib.Path(directory) if directory is not None else models_dir()
        self._detector = _interpreter(directory / DETECTOR_FILE)
        self._landmarker = _interpreter(directory / LANDMARK_FILE)

    @staticmethod
    def _run(interpreter, tensor: np.ndarray) -> list[np.ndarray]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None].astype(np.float32))
        interpreter.invoke()
        outputs = sorted(interpreter.get_output_details(), key=lambda d: d["name"])
        return [interpreter.get_tensor(d["index"])[0] for d in outputs]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """People in `image` (uint8 [H, W, 3]), best score first."""
        height, width = image.shape[:2]
        scale = DETECTOR_SIZE / max(height, width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        top, left = (DETECTOR_SIZE - new_h) // 2, (DETECTOR_SIZE - new_w) // 2
        letterbox = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)  # 0 is mid-grey in [-1, 1]
        resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR), np.float32)
        letterbox[top:top + new_h, left:left + new_w] = resized / 127.5 - 1.0
        raw, logits = self._run(self._detector, letterbox)  # Identity [2254, 12], Identity_1 [2254, 1]
        scores = _sigmoid(np.clip(logits[:, 0], -100.0, 100.0))
        keep = scores >= DETECTION_THRESHOLD
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / DETECTOR_SIZE, scores[keep], _ANCHORS[keep]
        # Box (x_centre, y_centre, w, h) and 4 keypoints, offsets from the anchor centre in [0, 1].
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4:12].reshape(-1, 4, 2) + anchors[:, None, :]
        merged = _weighted_nms(boxes, scores, points.reshape(-1, 8))
        detections = []
        for score, values in merged:
            # Letterboxed [0, 1] -> input pixels.
            pts = values.reshape(4, 2) * DETECTOR_SIZE
            pts = (pts - [left, top]) / scale
            detections.append(Detection(score, pts.astype(np.float32), self._roi(pts)))
        return detections

    @staticmethod
    def _roi(points: np.ndarray) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = points[0], points[1]
        side = 2.0 * math.hypot(x1 - x0, y1 - y0) * ROI_SCALE
        # Turns the crop so that mid-hip -> body point points up (target angle 90 degrees).
        rotation = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
        rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
        return float(x0), float(y0), float(side), float(rotation)

    @staticmethod
    def _roi_matrix(roi) -> np.ndarray:
        """2x3 affine map from crop pixels (continuous, 0..256) to image pixels."""
        cx, cy, side, rotation = roi
        c, s = math.cos(rotation), math.sin(rotation)
        k = side / LANDMARK_SIZE
        offset = LANDMARK_SIZE / 2
        return np.array([[c * k, -s * k, cx - (c * offset - s * offset) * k],
                         [s * k, c * k, cy - (s * offset + c * offset) * k]], np.float64)

    def landmarks(self, image: np.ndarray, roi) -> tuple[float, np.ndarray]:
        """(presence score, [39, 5] raw landmarks with x, y in image pixels) inside `roi`."""
        matrix = self._roi_matrix(roi)
        # Only the part of the photo under the region, its edge pixels repeated where the region leaves
        # the photo: black borders, unlike anything the network saw around people, cost accuracy.
        corners = np.array([[0, 0, 1], [LANDMARK_SIZE, 0, 1], [0, LANDMARK_SIZE, 1], [LANDMARK_SIZE] * 2 + [1]])
        xy = corners @ matrix.T
        left, top = np.floor(xy.min(0)).astype(int) - 1
        right, bottom = np.ceil(xy.max(0)).astype(int) + 1
        shifted = matrix - [[0, 0, left], [0, 0, top]]
        crop = Image.fromarray(_edge_padded(image, top, left, bottom - top, right - left)).transform(
            (LANDMARK_SIZE, LANDMARK_SIZE), Image.AFFINE, data=tuple(shifted.ravel()), resample=Image.BILINEAR)
        # Sorted output names: Identity (landmarks), Identity_1 (presence), _2 mask, _3 heatmap, _4 world.
        landmarks, presence, _, heatmap = self._run(self._landmarker, np.asarray(crop, np.float32) / 255.0)[:4]
        landmarks = landmarks.reshape(-1, 5).astype(np.float64)
        landmarks[:NUM_LANDMARKS, :2] = _refine(landmarks[:NUM_LANDMARKS, :2], heatmap)
        landmarks[:, :2] = landmarks[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        return float(presence[0]), landmarks

    def _views(self, image: np.ndarray, rois) -> list[tuple[float, np.ndarray]]:
        """(presence, [33, 5] landmarks in image pixels) for each ROI, on the photo and mirrored."""
        mirrored = image[:, ::-1]
        width = image.shape[1]
        views = []
        for cx, cy, side, rotation in rois:
            views.append(self.landmarks(image, (cx, cy, side, rotation)))
            presence, raw = self.landmarks(mirrored, (width - cx, cy, side, -rotation))
            raw = raw[MIRRORED]
            raw[:, 0] = width - raw[:, 0]
            views.append((presence, raw))
        return [(presence, raw[:NUM_LANDMARKS]) for presence, raw in views]

    def in_context(self, image: np.ndarray) -> bool:
        """Whether the detector finds a person in `image` set in a canvas CONTEXT_CANVAS x its long
        side, the photo's edge pixels repeated around it."""
        height, width = image.shape[:2]
        side = round(CONTEXT_CANVAS * max(height, width))
        return bool(self.detect(_edge_padded(image, -((side - height) // 2), -((side - width) // 2), side, side)))

    def __call__(self, image: np.ndarray, whole_frame: bool = False) -> Landmarks | None:
        """Landmarks of the largest person in `image` (uint8 [H, W, 3]); None if there is nobody.

        A detected person's region is tried at DETECTION_SCALES, each on the photo and mirrored; the
        person is kept when the most confident of these views reaches PRESENCE_THRESHOLD. With
        `whole_frame`, or when the detector finds nobody, the photo is taken to be framed on one
        person: the regions are centred on the photo, upright, WHOLE_FRAME_SCALES x its long side. Many
        views make a high presence by chance likely, so there only the middle region and its mirror
        decide (FRAMED_PRESENCE), or the detector on the photo in context (`in_context`); the other
        views are run only for a person found, to refine the joints.
        """
        detections = [] if whole_frame else self.detect(image)
        people = []
        for detection in detections:
            cx, cy, side, rotation = detection.roi
            views = self._views(image, [(cx, cy, side * scale, rotation) for scale in DETECTION_SCALES])
            if max(presence for presence, _ in views) >= PRESENCE_THRESHOLD:
                people.append((detection, views))
        if not detections:
            height, width = image.shape[:2]
            long = max(height, width)
            middle = WHOLE_FRAME_SCALES[len(WHOLE_FRAME_SCALES) // 2]
            roi = (width / 2, height / 2, middle * long, 0.0)
            views = self._views(image, [roi])
            if np.mean([presence for presence, _ in views]) >= FRAMED_PRESENCE or self.in_context(image):
                views += self._views(image, [(width / 2, height / 2, scale * long, 0.0)
                                             for scale in WHOLE_FRAME_SCALES if scale != middle])
                people.append((Detection(0.0, np.full((4, 2), np.nan, np.float32), roi), views))
        if not people:
            return None
        detection, views = max(people, key=lambda item: item[0].size)
        best = max(presence for presence, _ in views)
        # A person the detector found in context may have no view at PRESENCE_THRESHOLD: then the best.
        floor = min(best, max(PRESENCE_THRESHOLD, best - TTA_PRESENCE_MARGIN))
        raws = np.stack([raw for presence, raw in views if presence >= floor])
        return Landmarks(np.median(raws[:, :, :2], axis=0).astype(np.float32),
                         _sigmoid(raws[:, :, 3]).mean(0).astype(np.float32),
                         _sigmoid(raws[:, :, 4]).mean(0).astype(np.float32), detection, len(people))


def _edge_padded(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """The `height` x `width` window of `image` at (`top`, `left`), the photo's edge pixels repeated
    where it leaves the photo."""
    rows = np.clip(np.arange(top, top + height), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(left, left + width), 0, image.shape[1] - 1)
    return image[rows][:, cols]


def _refine(xy: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmap: each landmark ([N, 2] crop pixels) moves to the
    sigmoid-weighted mean of the HEATMAP_KERNEL-wide window of its heatmap channel around it, when that
    window's peak is >= HEATMAP_MIN_CONFIDENCE. `heatmap` [64, 64, >= N] logits."""
    size = heatmap.shape[0]
    cell = LANDMARK_SIZE / size
    half = HEATMAP_KERNEL // 2
    out = xy.copy()
    for k, (col, row) in enumerate(np.floor(xy / cell).astype(int)):
        if not (0 <= col < size and 0 <= row < size):
            continue
        r0, r1, c0, c1 = max(0, row - half), min(size, row + half + 1), max(0, col - half), min(size, col + half + 1)
        window = _sigmoid(heatmap[r0:r1, c0:c1, k].astype(np.float64))
        if window.max() < HEATMAP_MIN_CONFIDENCE:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        # MediaPipe's normalised coordinate is the cell index / size, as here (the cell centre,
        # index + 0.5, scored lower on the fixtures).
        out[k] = (np.sum(cols * window), np.sum(rows * window)) / window.sum() * cell
    return out


def define_flags() -> None:
    cli.define_shared("out", default=str(DEFAULT_MODELS_DIR),
                      note=f"The two .tflite files (from {WHEEL_REQUIREMENT}, fetched with pip).")


def main(argv) -> None:
    """`python -m keras_disentangle.pose.blazepose [--out=DIR]`: fetch the BlazePose models."""
    cli.no_positional(argv)
    for path in fetch_models(flags.FLAGS.out):
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    cli.run(main, define_flags)
