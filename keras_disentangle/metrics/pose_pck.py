"""PCK of the built-in keypoint estimator against the annotated fixture photos.

    python -m keras_disentangle.metrics.pose_pck --fixtures=../shared/fixtures

A joint annotated in the CSV is correct when the estimate lies within 0.5 x head size of it
(Euclidean, in pixels of the photo as stored). The COCO-18 skeleton has no head top, so the head
size is the nose-neck distance of the annotation; when the annotation lacks the nose or the neck
it is 1/8 of the photo height (both fixture sets frame one standing person, about 8 heads tall).
A joint the estimator leaves missing counts as wrong; joints the annotation lacks are not scored,
and how many of those the estimator nevertheless gives is reported as `extra`. The annotations
are themselves OpenPose estimates (fixtures README), not human labels.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import numpy as np
from absl import flags

from keras_disentangle import cli, configs
from keras_disentangle.data import annotations, geometry, layouts
from keras_disentangle.pose import keypoints

PCK_FACTOR = 0.5
HEAD_FALLBACK = 1.0 / 8.0
# dataset -> (its folder under the fixtures root, its layout's annotation CSV and image folder of a split, the
# splits scored).
FIXTURE_SETS = {
    "market": ("market1501_mini", layouts.market_annotation_csv, layouts.market_image_dir, ("train", "test")),
    "deepfashion": ("deepfashion_mini", layouts.deepfashion_annotation_csv, layouts.deepfashion_image_dir, ("test",)),
}


def head_size(annotation: np.ndarray, height: int) -> float:
    """Nose-neck distance of `annotation` ([18, 2] (y, x), -1 missing), else `height` / 8."""
    if (annotation[:2] >= 0).all():
        return float(np.linalg.norm(annotation[0] - annotation[1]))
    return height * HEAD_FALLBACK


def correct_joints(estimate: np.ndarray, annotation: np.ndarray, head: float) -> np.ndarray:
    """bool [18]: annotated, estimated and within PCK_FACTOR x `head` pixels."""
    annotated = (annotation >= 0).all(1)
    estimated = (estimate >= 0).all(1)
    distance = np.linalg.norm(estimate.astype(np.float64) - annotation, axis=1)
    return annotated & estimated & (distance <= PCK_FACTOR * head)


@dataclasses.dataclass
class Score:
    """Counts per joint: correct, annotated, extra (estimated where the annotation has none); photos."""

    correct: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(configs.NUM_KEYPOINTS, int))
    annotated: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(configs.NUM_KEYPOINTS, int))
    extra: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(configs.NUM_KEYPOINTS, int))
    photos: int = 0
    no_person: int = 0
    # Process CPU time of the estimator (not of reading photos): a shared machine's load barely changes it.
    cpu_seconds: float = 0.0

    @property
    def pck(self) -> float:
        return float(self.correct.sum() / max(self.annotated.sum(), 1))

    def per_joint(self) -> np.ndarray:
        return self.correct / np.maximum(self.annotated, 1)


def score_fixtures(root, estimator: keypoints.Estimator) -> dict[str, Score]:
    """Runs `estimator` on every annotated fixture photo; returns a Score per dataset."""
    root = pathlib.Path(root)
    scores = {}
    for dataset, (folder, annotation_csv, image_dir, splits) in FIXTURE_SETS.items():
        score = Score()
        for split in splits:
            for entry in annotations.read_annotation_csv(annotation_csv(root / folder, split)).entries:
                if isinstance(entry, annotations.BadInput):
                    raise entry
                annotation = np.asarray(entry.keypoints)
                image = keypoints.read_image(image_dir(root / folder, split) / entry.name)
                start = time.process_time()
                try:
                    estimate = estimator(image, entry.name).keypoints
                except ValueError:
                    estimate = np.full_like(annotation, -1)
                    score.no_person += 1
                score.cpu_seconds += time.process_time() - start
                score.photos += 1
                annotated = (annotation >= 0).all(1)
                score.correct += correct_joints(estimate, annotation, head_size(annotation, image.shape[0]))
                score.annotated += annotated
                score.extra += (estimate >= 0).all(1) & ~annotated
        scores[dataset] = score
    return scores


def table(scores: dict[str, Score]) -> str:
    """A Markdown table: PCK per dataset (overall, then per joint)."""
    names = geometry.KEYPOINT_NAMES
    lines = ["| dataset | photos | PCK@0.5 head | " + " | ".join(names) + " | extra | no person |",
             "|---" * (len(names) + 5) + "|"]
    for dataset, score in scores.items():
        joints = " | ".join(f"{v:.2f}" for v in score.per_joint())
        lines.append(f"| {dataset} | {score.photos} | **{score.pck:.3f}** ({score.correct.sum()}/"
                     f"{score.annotated.sum()}) | {joints} | {score.extra.sum()} | {score.no_person} |")
    return "\n".join(lines)


def define_flags() -> None:
    flags.DEFINE_string("fixtures", "../shared/fixtures", "The fixtures root (market1501_mini/, deepfashion_mini/).")
    cli.define_shared("models_dir")


def main(argv) -> None:
    """`python -m keras_disentangle.metrics.pose_pck [--fixtures=DIR]`: prints the PCK table."""
    cli.no_positional(argv)
    scores = score_fixtures(flags.FLAGS.fixtures, keypoints.Estimator(flags.FLAGS.models_dir))
    print(table(scores))
    for dataset, score in scores.items():
        print(f"{dataset}: {1000 * score.cpu_seconds / max(score.photos, 1):.0f} ms of process CPU per photo")


if __name__ == "__main__":
    cli.run(main, define_flags)
