"""SavedModel export for serving (TF Serving, `tf.saved_model.load`, `saved_model_cli`).

  python -m keras_disentangle.export --stage=1 --logdir=runs/s1 --out=export/s1

Stage-I signatures (H x W = the run's image size, e.g. 64 x 32 at tiny scale):
  encode(image, keypoints) -> {fg, bg, pose}
      image: float32 (batch, H, W, 3) in [-1, 1]; keypoints: float32 (batch, 18, 2), (y, x) pixels
      at H x W, -1 for a missing joint. fg: (batch, 7 * D); bg: (batch, B) (absent for datasets
      without a background factor); pose: (batch, pose_embedding_dim), the pose auto-encoder's code.
  decode(fg, bg, pose) -> {image}: the generator on the appearance code, in the pose decoded from
      the pose code (heatmaps drawn from the decoded keypoints).
  reconstruct(image, keypoints) -> {image}: G1(x, h), the reconstruction in the image's own pose.

The masks, ROI boxes, heatmaps and pose vectors are computed inside the graph, so a client sends
only images and keypoints. The exported model does not need keras_disentangle to load.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_disentangle import configs, geometry  # noqa: E402
from keras_disentangle.models.stage1 import Stage1, appearance_embedding, build_stage1  # noqa: E402
from keras_disentangle.training import checkpoint  # noqa: E402
from keras_disentangle.training.stage1 import stage1_trackables  # noqa: E402


def model_inputs(cfg: configs.Config, image: tf.Tensor, keypoints: tf.Tensor) -> dict:
    """What the networks read, derived from images and keypoints exactly as the input pipeline does."""
    data = cfg.data
    h, w = data.height, data.width
    boxes, visibility = geometry.roi_boxes(keypoints, h, w, pad=data.roi_pad, pad_single=data.roi_pad_single)
    return {
        "image": image,
        "body_mask": geometry.body_mask(keypoints, h, w, data.mask_radius, close_size=data.mask_close_size),
        "roi_boxes": boxes,
        "roi_visibility": visibility,
        "heatmaps": geometry.pose_heatmaps(keypoints, h, w, radius=data.heatmap_radius),
        "pose_vector": geometry.pose_vector(keypoints, h, w),
    }


class Stage1Serving:
    """The stage-I serving functions over a built `Stage1`, usable in process and for export."""

    def __init__(self, cfg: configs.Config, stage1: Stage1):
        self.cfg, self.stage1 = cfg, stage1
        h, w = cfg.data.height, cfg.data.width
        self.image_spec = tf.TensorSpec([None, h, w, 3], tf.float32, name="image")
        self.keypoints_spec = tf.TensorSpec([None, configs.NUM_KEYPOINTS, 2], tf.float32, name="keypoints")

    def encode(self, image, keypoints) -> dict:
        inputs = model_inputs(self.cfg, image, keypoints)
        embeddings = self.stage1.appearance_encoder(
            {k: inputs[k] for k in ("image", "body_mask", "roi_boxes", "roi_visibility")}, training=False)
        codes = {"fg": embeddings["fg_embedding"],
                 "pose": self.stage1.pose_encoder(inputs["pose_vector"], training=False)}
        if self.cfg.data.has_background:
            codes["bg"] = embeddings["bg_embedding"]
        return codes

    def decode(self, fg, pose, bg=None) -> dict:
        data = self.cfg.data
        pose_vector = self.stage1.pose_decoder(pose, training=False)
        heatmaps = geometry.heatmaps_from_pose_vector(pose_vector, data.height, data.width, data.heatmap_radius)
        return {"image": self.generate(fg, bg, heatmaps)}

    def generate(self, fg, bg, heatmaps) -> tf.Tensor:
        """The generator on appearance codes in the pose given as heatmaps."""
        embeddings = {"fg_embedding": fg}
        if bg is not None:
            embeddings["bg_embedding"] = bg
        return self.stage1.generator(
            {"appearance_embedding": appearance_embedding(embeddings), "heatmaps": heatmaps}, training=False)

    def reconstruct(self, image, keypoints) -> dict:
        inputs = model_inputs(self.cfg, image, keypoints)
        codes = self.encode(image, keypoints)
        return {"image": self.generate(codes["fg"], codes.get("bg"), inputs["heatmaps"])}

    def code_specs(self) -> list[tf.TensorSpec]:
        model = self.cfg.model
        specs = [tf.TensorSpec([None, model.fg_embedding_dim], tf.float32, name="fg")]
        if self.cfg.data.has_background:
            specs.append(tf.TensorSpec([None, model.bg_embedding_dim], tf.float32, name="bg"))
        specs.append(tf.TensorSpec([None, model.pose_embedding_dim], tf.float32, name="pose"))
        return specs

    def add_endpoints(self, archive: keras.export.ExportArchive) -> None:
        archive.add_endpoint("reconstruct", self.reconstruct, [self.image_spec, self.keypoints_spec])
        archive.add_endpoint("encode", self.encode, [self.image_spec, self.keypoints_spec])
        if self.cfg.data.has_background:
            archive.add_endpoint("decode", lambda fg, bg, pose: self.decode(fg, pose, bg), self.code_specs())
        else:
            archive.add_endpoint("decode", lambda fg, pose: self.decode(fg, pose), self.code_specs())


def load_stage1(logdir: str) -> tuple[configs.Config, Stage1]:
    """Builds the networks of a stage-I run and restores its newest weights.

    Raises:
      checkpoint.RunDirectoryError: if `logdir` is not a stage-I run with a checkpoint.
    """
    cfg = checkpoint.load_config(logdir)
    stage1 = build_stage1(cfg)
    checkpoint.restore_weights(logdir, **stage1_trackables(stage1))
    return cfg, stage1


def export_stage1(logdir: str, out: str) -> str:
    """Writes the stage-I SavedModel of the run in `logdir` to `out`; returns `out`."""
    cfg, stage1 = load_stage1(logdir)
    archive = keras.export.ExportArchive()
    for model in stage1_trackables(stage1).values():
        archive.track(model)
    Stage1Serving(cfg, stage1).add_endpoints(archive)
    archive.write_out(out, verbose=False)
    return out


FLAGS = flags.FLAGS
flags.DEFINE_integer("stage", 1, "Which stage to export.")
flags.DEFINE_string("logdir", None, "Stage I: the run directory.")
flags.DEFINE_string("out", None, "Where to write the SavedModel.")


def main(argv):
    del argv
    if FLAGS.stage != 1:
        raise app.UsageError(f"--stage={FLAGS.stage} cannot be exported; expected 1.")
    if not FLAGS.logdir or not FLAGS.out:
        raise app.UsageError("--logdir and --out are required.")
    print(f"Wrote {export_stage1(FLAGS.logdir, FLAGS.out)}")


if __name__ == "__main__":
    app.run(main)
