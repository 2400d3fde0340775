"""SavedModel export for serving (TF Serving, `tf.saved_model.load`, `saved_model_cli`).

  python -m keras_disentangle.export --stage=1 --logdir=runs/s1 --out=export/s1
  python -m keras_disentangle.export --stage1_dir=runs/s1 --out=export/s1     (the same)
  python -m keras_disentangle.export --stage1_dir=runs/s1 --stage2_dir=runs/s2-fg \
      --stage2_dir=runs/s2-bg --stage2_dir=runs/s2-pose --out=export/s2

Stage-I signatures (H x W = the run's image size, e.g. 64 x 32 at tiny scale):
  encode(image, keypoints) -> {fg, bg, pose}
      image: float32 (batch, H, W, 3) in [-1, 1]; keypoints: float32 (batch, 18, 2), (y, x) pixels
      at H x W, -1 for a missing joint. fg: (batch, 7 * D); bg: (batch, B) (absent for datasets
      without a background factor); pose: (batch, pose_embedding_dim), the pose auto-encoder's code.
  decode(fg, bg, pose) -> {image}: the generator on the appearance code, in the pose decoded from
      the pose code (heatmaps drawn from the decoded keypoints).
  reconstruct(image, keypoints) -> {image}: G1(x, h), the reconstruction in the image's own pose.

With stage-II runs (one per factor of the dataset: fg, bg, pose) the model adds:
  sample(n, seed) -> {image, fg, bg, pose, keypoints}: n new people from noise alone; n, seed:
      int32 scalars; the same seed gives the same people (stateless noise, `apps.sample`).
  transfer(source_image, source_keypoints, target_keypoints) -> {image}: the source person in the
      target pose (pose-guided generation); also `serving_default`.
  swap(source_image, source_keypoints, target_image, target_keypoints) -> {fg, bg, pose}: the target
      image with the source's foreground / background / pose.

The masks, ROI boxes, heatmaps and pose vectors are computed inside the graph, so a client sends
only images and keypoints. The exported model does not need keras_disentangle to load.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_disentangle import configs, geometry, precision  # noqa: E402
from keras_disentangle.models.stage1 import Stage1, appearance_embedding, build_stage1  # noqa: E402
from keras_disentangle.training import checkpoint, stage2  # noqa: E402
from keras_disentangle.training.stage1 import stage1_trackables  # noqa: E402


def model_inputs(cfg: configs.Config, image: tf.Tensor, keypoints: tf.Tensor) -> dict:
    """What the networks read, derived from images and keypoints exactly as the input pipeline does."""
    data = cfg.data
    h, w = data.height, data.width
    # Keras refuses a dict input mixing numpy arrays (callers' images) and tensors (derived below).
    image = tf.convert_to_tensor(image, tf.float32)
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
        # Keras refuses a dict that mixes numpy arrays and tensors.
        heatmaps = tf.convert_to_tensor(heatmaps, tf.float32)
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


# Each factor draws its noise from its own stateless stream (seed, index), so that sampling one
# factor never changes another.
FACTOR_STREAMS = {configs.Factor.FOREGROUND: 0, configs.Factor.BACKGROUND: 1, configs.Factor.POSE: 2}


class Stage2Serving(Stage1Serving):
    """Stage I plus the stage-II mappers: sampling, pose transfer and swaps, in process and for export.

    Args:
      cfg: Config. The stage-I run's data and model fields; `train.noise_stddev` scales z.
      stage1: Stage1. Its networks.
      mappers: dict Factor -> Phi of that factor, `(batch, K)` -> `(batch, K)`; any subset.
    """

    def __init__(self, cfg: configs.Config, stage1: Stage1, mappers: dict):
        super().__init__(cfg, stage1)
        self.mappers = {configs.Factor(k): v for k, v in mappers.items()}

    @property
    def factors(self) -> tuple[configs.Factor, ...]:
        """The dataset's factors in order: fg, bg (if the dataset has one), pose."""
        return tuple(f for f in FACTOR_STREAMS if f != configs.Factor.BACKGROUND or self.cfg.data.has_background)

    def mapper(self, factor: configs.Factor | str) -> keras.Model:
        """Phi of `factor`.

        Raises:
          ValueError: if no mapper of `factor` was loaded.
        """
        factor = configs.Factor(factor)
        if factor not in self.mappers:
            raise ValueError(f"factors: no stage-II run of {factor.value!r} was given (have "
                             f"{sorted(f.value for f in self.mappers)}); pass its --stage2_dir.")
        return self.mappers[factor]

    def sample_embedding(self, factor: configs.Factor | str, n, seed) -> tf.Tensor:
        """Phi(z) for `n` noise vectors of `factor`'s stream of `seed`.

        Returns:
          float32 `(n, K)`.

        Raises:
          ValueError: if no mapper of `factor` was loaded.
        """
        factor = configs.Factor(factor)
        mapper = self.mapper(factor)
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(FACTOR_STREAMS[factor], tf.int64)])
        noise = stage2.sample_noise(n, self.cfg.model.embedding_dim(factor), self.cfg.train.noise_stddev, seed)
        return mapper(noise, training=False)

    def pose_from_embedding(self, pose) -> tuple[tf.Tensor, tf.Tensor]:
        """Decodes pose codes into keypoints `(batch, 18, 2)` and heatmaps `(batch, H, W, 18)`."""
        data = self.cfg.data
        vector = self.stage1.pose_decoder(pose, training=False)
        return (geometry.keypoints_from_pose_vector(vector, data.height, data.width),
                geometry.heatmaps_from_pose_vector(vector, data.height, data.width, data.heatmap_radius))

    def heatmaps(self, keypoints) -> tf.Tensor:
        data = self.cfg.data
        return geometry.pose_heatmaps(keypoints, data.height, data.width, radius=data.heatmap_radius)

    def sample(self, n, seed) -> dict:
        """`n` new people, every factor sampled from noise; see the module docstring."""
        codes = {f.value: self.sample_embedding(f, n, seed) for f in self.factors}
        keypoints, heatmaps = self.pose_from_embedding(codes["pose"])
        return {"image": self.generate(codes["fg"], codes.get("bg"), heatmaps), "keypoints": keypoints, **codes}

    def transfer(self, source_image, source_keypoints, target_keypoints) -> dict:
        codes = self.encode(source_image, source_keypoints)
        return {"image": self.generate(codes["fg"], codes.get("bg"), self.heatmaps(target_keypoints))}

    def swap(self, source_image, source_keypoints, target_image, target_keypoints) -> dict:
        source = self.encode(source_image, source_keypoints)
        target = self.encode(target_image, target_keypoints)
        target_heatmaps = self.heatmaps(target_keypoints)
        out = {"fg": self.generate(source["fg"], target.get("bg"), target_heatmaps),
               "pose": self.generate(target["fg"], target.get("bg"), self.heatmaps(source_keypoints))}
        if self.cfg.data.has_background:
            out["bg"] = self.generate(target["fg"], source["bg"], target_heatmaps)
        return out

    def add_endpoints(self, archive: keras.export.ExportArchive) -> None:
        super().add_endpoints(archive)
        missing = [f.value for f in self.factors if f not in self.mappers]
        if missing:
            raise ValueError(f"stage2_dirs: the SavedModel needs a stage-II run of every factor; "
                             f"missing {', '.join(missing)}.")
        archive.add_endpoint("sample", self.sample, [tf.TensorSpec([], tf.int32, name="n"),
                                                     tf.TensorSpec([], tf.int32, name="seed")])
        pair = [self._named(self.image_spec, "source_image"), self._named(self.keypoints_spec, "source_keypoints")]
        transfer_specs = pair + [self._named(self.keypoints_spec, "target_keypoints")]
        archive.add_endpoint("transfer", self.transfer, transfer_specs)
        archive.add_endpoint("serving_default", self.transfer, transfer_specs)
        archive.add_endpoint("swap", self.swap, pair + [self._named(self.image_spec, "target_image"),
                                                        self._named(self.keypoints_spec, "target_keypoints")])

    @staticmethod
    def _named(spec: tf.TensorSpec, name: str) -> tf.TensorSpec:
        return tf.TensorSpec(spec.shape, spec.dtype, name=name)


def load_stage2(stage2_dirs, stage1_dir: str | None = None) -> Stage2Serving:
    """Loads stage-II runs (one per factor) and the stage-I run they were trained on.

    Args:
      stage2_dirs: iterable of stage-II run directories, at most one per factor.
      stage1_dir: str or None. The stage-I run; None takes the one named in the runs' `stage2.json`
        (a run directory that was moved needs it given).

    Returns:
      Stage2Serving with every given mapper.

    Raises:
      ValueError: for no run, two runs of one factor, runs of different stage-I runs, or a stage-I
        config that differs from the one a mapper was trained on.
      checkpoint.RunDirectoryError: for a directory that is not a run.
    """
    runs = [stage2.load_stage2_run(d) for d in stage2_dirs]
    if not runs:
        raise ValueError("stage2_dirs: expected at least one stage-II run directory, got none.")
    mappers = {}
    for directory, run in zip(stage2_dirs, runs):
        if run.factor in mappers:
            raise ValueError(f"stage2_dirs: two runs of factor {run.factor.value!r} (the second is {directory}).")
        mappers[run.factor] = run.mapper
    if stage1_dir is None:
        recorded = {run.stage1_dir for run in runs}
        if len(recorded) != 1:
            raise ValueError(f"stage2_dirs: the runs were trained on different stage-I runs {sorted(recorded)}; "
                             "pass --stage1_dir to choose one.")
        stage1_dir = recorded.pop()
    cfg, stage1 = load_stage1(stage1_dir)
    for directory, run in zip(stage2_dirs, runs):
        if (run.cfg.data, run.cfg.model) != (cfg.data, cfg.model):
            raise ValueError(f"stage2_dirs: {directory} was trained on a stage-I model other than "
                             f"{stage1_dir} (config.json data/model fields differ).")
    # Sampling reads the noise scale of stage II (a train field), not stage I's.
    cfg = configs.Config(cfg.data, cfg.model, runs[0].cfg.train, cfg.scale)
    return Stage2Serving(cfg, stage1, mappers)


def export_stage2(stage2_dirs, out: str, stage1_dir: str | None = None) -> str:
    """Writes the stage-I + stage-II SavedModel (module docstring) to `out`; returns `out`.

    Raises:
      ValueError: see `load_stage2`, or when a factor of the dataset has no stage-II run.
    """
    serving = load_stage2(stage2_dirs, stage1_dir)
    archive = keras.export.ExportArchive()
    for model in [*stage1_trackables(serving.stage1).values(), *serving.mappers.values()]:
        archive.track(model)
    serving.add_endpoints(archive)
    archive.write_out(out, verbose=False)
    return out


FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined only when run as a program: apps, generate and the metrics import this module next
    # to their own flags.
    flags.DEFINE_integer("stage", None, "1: export a stage-I run (--logdir); 2: needs --stage2_dir.")
    flags.DEFINE_string("logdir", None, "With --stage=1: the stage-I run directory (= --stage1_dir).")
    flags.DEFINE_string("stage1_dir", None, "The stage-I run directory.")
    flags.DEFINE_multi_string("stage2_dir", [], "A stage-II run directory; repeat once per factor.")
    flags.DEFINE_string("out", None, "Where to write the SavedModel.")
    flags.DEFINE_string("precision", "auto", "Dtype policy the SavedModel computes in: auto (mixed_bfloat16 "
                        "where this machine has bf16 arithmetic, else float32), float32 or mixed_bfloat16.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    stage1_dir = FLAGS.stage1_dir or FLAGS.logdir
    if not FLAGS.out or not (stage1_dir or FLAGS.stage2_dir):
        raise app.UsageError("--out and --stage1_dir (or --stage=1 --logdir; and --stage2_dir per factor for "
                             "stage II) are required.")
    if FLAGS.stage == 2 and not FLAGS.stage2_dir:
        raise app.UsageError("--stage=2 needs --stage2_dir once per factor.")
    try:
        precision.apply(FLAGS.precision)
        if FLAGS.stage2_dir and FLAGS.stage != 1:
            out = export_stage2(FLAGS.stage2_dir, FLAGS.out, stage1_dir)
        else:
            out = export_stage1(stage1_dir, FLAGS.out)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    print(f"Wrote {out}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
