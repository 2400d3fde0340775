"""The inference runtime: loading trained runs and serving them, in process and for export.

Everything that uses a trained model stands on this module (applications, `generate`, `demo`, the
metrics, `export`); none of them imports `training/`. Training imports from here what it shares with
inference (the checkpoint's network names, noise, stage-I encoding).

  load_stage1(dir) -> (cfg, Stage1)            a stage-I run's networks with its newest weights;
  load_stage2(dirs) -> Stage2Serving           stage-II runs (one per factor) on their stage-I run;
  Stage1Serving / Stage2Serving                encode, decode, generate, reconstruct, transfer,
                                               swap / sample over images and keypoints; the
                                               SavedModel signatures of `export` are these methods;
  model_inputs(cfg, image, keypoints)          what the networks read, as the input pipeline derives it;
  load_baseline(dir) -> BaselineServing        a VAE / DCGAN sampling baseline (Fig. 7).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from keras_disentangle import configs, data, rundir
from keras_disentangle.data import geometry
from keras_disentangle.models.baselines import SAMPLER, build_baseline
from keras_disentangle.models.mapper import build_mapper
from keras_disentangle.models.stage1 import (Stage1, appearance_embedding, build_stage1,  # noqa: F401
                                             encoder_inputs, reconstruct)


def stage1_trackables(stage1: Stage1) -> dict:
    """The networks of a stage-I checkpoint, by the names every reader of it uses."""
    return {"appearance_encoder": stage1.appearance_encoder, "generator": stage1.generator,
            "d1": stage1.d1, "pose_encoder": stage1.pose_encoder, "pose_decoder": stage1.pose_decoder}


def model_inputs(cfg: configs.Config, image, keypoints) -> dict:
    """What the networks read, derived from images and keypoints exactly as the input pipeline does."""
    # Keras refuses a dict input mixing numpy arrays (callers' images) and tensors (derived below).
    image = tf.convert_to_tensor(image, tf.float32)
    return {"image": image, **data.pose_features(tf.convert_to_tensor(keypoints, tf.float32), cfg.data)}


def _restore_stage1(logdir: str) -> tuple[configs.Config, Stage1, str]:
    cfg = rundir.load_config(logdir)
    stage1 = build_stage1(cfg)
    restored = rundir.restore_weights(logdir, **stage1_trackables(stage1))
    return cfg, stage1, restored


def load_stage1(logdir: str) -> tuple[configs.Config, Stage1]:
    """Builds the networks of a stage-I run and restores its newest weights.

    Raises:
      rundir.RunDirectoryError: if `logdir` is not a stage-I run with a checkpoint.
    """
    cfg, stage1, _ = _restore_stage1(logdir)
    return cfg, stage1


def load_frozen_stage1(stage1_dir: str) -> tuple[configs.Config, Stage1, str]:
    """`load_stage1` with every network frozen (`trainable = False`), for stage-II training.

    Returns:
      The run's config, its networks and the checkpoint read.

    Raises:
      rundir.RunDirectoryError: if `stage1_dir` is not a stage-I run with a checkpoint.
    """
    cfg, stage1, restored = _restore_stage1(stage1_dir)
    for model in stage1_trackables(stage1).values():
        model.trainable = False
    return cfg, stage1, restored


def encode_factor(stage1: Stage1, batch: dict, factor: configs.Factor) -> tf.Tensor:
    """The real embedding of `factor` for a data batch, by the stage-I encoders.

    Returns:
      float32 `(batch, K)`, K = `cfg.model.embedding_dim(factor)`.
    """
    if factor == configs.Factor.POSE:
        return stage1.pose_encoder(batch["pose_vector"], training=False)
    embeddings = stage1.appearance_encoder(encoder_inputs(batch), training=False)
    return embeddings["fg_embedding" if factor == configs.Factor.FOREGROUND else "bg_embedding"]


def sample_noise(batch_size, dim: int, stddev: float, seed=None) -> tf.Tensor:
    """z ~ N(0, stddev^2 I), the mappers' input (the authors' code uses stddev 0.2).

    Args:
      batch_size: int or scalar int tensor.
      dim: int. K, the mapper's input size.
      stddev: float.
      seed: None draws from TensorFlow's global random state (training); an int, or an int
        tensor of shape `(2,)`, draws statelessly, so the same seed gives the same z in any
        process and inside a SavedModel.

    Returns:
      float32 `(batch_size, dim)`.
    """
    if seed is None:
        return tf.random.normal([batch_size, dim], stddev=stddev)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return tf.random.stateless_normal([batch_size, dim], seed=seed, stddev=stddev)


class Stage1Serving:
    """The stage-I serving functions over a built `Stage1`, usable in process and for export.

    Pose transfer and swaps need no stage-II run: they re-render encoded appearance codes in poses
    given as keypoints.
    """

    def __init__(self, cfg: configs.Config, stage1: Stage1):
        self.cfg, self.stage1 = cfg, stage1
        h, w = cfg.data.height, cfg.data.width
        self.image_spec = tf.TensorSpec([None, h, w, 3], tf.float32, name="image")
        self.keypoints_spec = tf.TensorSpec([None, configs.NUM_KEYPOINTS, 2], tf.float32, name="keypoints")

    def encode(self, image, keypoints) -> dict:
        inputs = model_inputs(self.cfg, image, keypoints)
        embeddings = self.stage1.appearance_encoder(encoder_inputs(inputs), training=False)
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

    @property
    def factors(self) -> tuple[configs.Factor, ...]:
        """The dataset's factors in order: fg, bg (if the dataset has one), pose."""
        return tuple(f for f in configs.Factor if f != configs.Factor.BACKGROUND or self.cfg.data.has_background)

    def heatmaps(self, keypoints) -> tf.Tensor:
        data = self.cfg.data
        return geometry.pose_heatmaps(keypoints, data.height, data.width, radius=data.heatmap_radius)

    # Transfer and swaps need stage I only: codes from the encoders, the pose from keypoints.
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

    def reconstruct(self, image, keypoints) -> dict:
        return {"image": reconstruct(self.stage1, model_inputs(self.cfg, image, keypoints))}

    def render(self, fg, keypoints, bg=None) -> dict:
        """The generator on appearance codes in the pose of real keypoints (swaps of any factors)."""
        return {"image": self.generate(fg, bg, self.heatmaps(tf.convert_to_tensor(keypoints, tf.float32)))}

    def model_info(self) -> dict:
        """What a client needs to know of the model: image size, FG body parts (7, 0 for WholeBody), z's scale."""
        parts = configs.NUM_ROIS if self.cfg.model.fg_encoder == configs.FgEncoderKind.BODY_ROI7 else 0
        return {"height": tf.constant(self.cfg.data.height), "width": tf.constant(self.cfg.data.width),
                "roi_parts": tf.constant(parts), "noise_stddev": tf.constant(self.cfg.train.noise_stddev, tf.float32)}

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
        pair = [self._named(self.image_spec, "source_image"), self._named(self.keypoints_spec, "source_keypoints")]
        transfer_specs = pair + [self._named(self.keypoints_spec, "target_keypoints")]
        archive.add_endpoint("transfer", self.transfer, transfer_specs)
        archive.add_endpoint("serving_default", self.transfer, transfer_specs)
        archive.add_endpoint("swap", self.swap, pair + [self._named(self.image_spec, "target_image"),
                                                        self._named(self.keypoints_spec, "target_keypoints")])
        fg_spec, *bg_spec = self.code_specs()[:-1]
        if bg_spec:
            archive.add_endpoint("render", lambda fg, bg, keypoints: self.render(fg, keypoints, bg),
                                 [fg_spec, *bg_spec, self.keypoints_spec])
        else:
            archive.add_endpoint("render", self.render, [fg_spec, self.keypoints_spec])
        archive.add_endpoint("model_info", self.model_info, [])

    @staticmethod
    def _named(spec: tf.TensorSpec, name: str) -> tf.TensorSpec:
        return tf.TensorSpec(spec.shape, spec.dtype, name=name)


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
        return self.mapper(factor)(self.noise(factor, n, seed), training=False)

    def noise(self, factor: configs.Factor | str, n, seed) -> tf.Tensor:
        """z of `factor`'s stream of `seed`, `(n, K)`: what `sample_embedding` maps."""
        factor = configs.Factor(factor)
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(FACTOR_STREAMS[factor], tf.int64)])
        return sample_noise(n, self.cfg.model.embedding_dim(factor), self.cfg.train.noise_stddev, seed)

    def pose_from_embedding(self, pose) -> tuple[tf.Tensor, tf.Tensor]:
        """Decodes pose codes into keypoints `(batch, 18, 2)` and heatmaps `(batch, H, W, 18)`."""
        data = self.cfg.data
        vector = self.stage1.pose_decoder(pose, training=False)
        return (geometry.keypoints_from_pose_vector(vector, data.height, data.width),
                geometry.heatmaps_from_pose_vector(vector, data.height, data.width, data.heatmap_radius))

    def sample(self, n, seed) -> dict:
        """`n` new people, every factor sampled from noise; see the module docstring."""
        codes = {f.value: self.sample_embedding(f, n, seed) for f in self.factors}
        keypoints, heatmaps = self.pose_from_embedding(codes["pose"])
        return {"image": self.generate(codes["fg"], codes.get("bg"), heatmaps), "keypoints": keypoints, **codes}

    def _map_endpoint(self, factor: configs.Factor):
        """Phi of `factor` alone as a signature function (a closure: tf.function saves no model argument)."""
        return lambda z: {"embedding": self.mappers[factor](z, training=False)}

    def add_endpoints(self, archive: keras.export.ExportArchive) -> None:
        super().add_endpoints(archive)
        missing = [f.value for f in self.factors if f not in self.mappers]
        if missing:
            raise ValueError(f"stage2_dirs: the SavedModel needs a stage-II run of every factor; "
                             f"missing {', '.join(missing)}.")
        n_seed = [tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.int32, name="seed")]
        archive.add_endpoint("sample", self.sample, n_seed)
        # Walks in z and inverse interpolation: the noise of a seed, and each Phi alone (differentiable).
        archive.add_endpoint("noise", lambda n, seed: {f.value: self.noise(f, n, seed) for f in self.factors}, n_seed)
        for factor in self.factors:
            spec = tf.TensorSpec([None, self.cfg.model.embedding_dim(factor)], tf.float32, name="z")
            archive.add_endpoint(f"map_{factor.value}", self._map_endpoint(factor), [spec])


@dataclasses.dataclass(frozen=True)
class Stage2Run:
    """A trained stage-II run, loaded.

    Attributes:
      factor: Factor. What the mapper samples.
      stage1_dir: str. The stage-I run it was trained on (as recorded in `stage2.json`).
      cfg: Config. The run's config (data and model fields equal the stage-I run's).
      mapper: keras.Model. Phi with its newest weights, `(batch, K)` -> `(batch, K)`.
    """

    factor: configs.Factor
    stage1_dir: str
    cfg: configs.Config
    mapper: keras.Model


def load_stage2_run(stage2_dir: str) -> Stage2Run:
    """Reads `stage2.json` and config.json of a stage-II run and restores its mapper.

    Raises:
      rundir.RunDirectoryError: if `stage2_dir` is not a stage-II run with a checkpoint.
    """
    record = rundir.read_stage2_record(stage2_dir)
    cfg = rundir.load_config(stage2_dir)
    mapper = build_mapper(cfg, record.factor)
    rundir.restore_weights(stage2_dir, mapper=mapper)
    return Stage2Run(record.factor, record.stage1_dir, cfg, mapper)


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
      rundir.RunDirectoryError: for a directory that is not a run.
    """
    runs = [load_stage2_run(d) for d in stage2_dirs]
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


class BaselineServing:
    """A trained VAE or DCGAN baseline: whole images from one N(0, I) code (no factors).

    Args:
      cfg: Config of the baseline run.
      model: configs.Baseline.
      generator: the VAE decoder or DCGAN generator, `(batch, latent)` -> images in [-1, 1].
    """

    def __init__(self, cfg: configs.Config, model: configs.Baseline, generator: keras.Model):
        self.cfg, self.model, self.generator = cfg, configs.Baseline(model), generator

    def sample(self, n, seed) -> dict:
        """`n` images from the stateless normal stream of `seed`: `{"image": (n, H, W, 3)}`."""
        noise = sample_noise(n, self.cfg.model.baseline_latent_dim, 1.0, seed)
        return {"image": self.generator(noise, training=False)}


def load_baseline(logdir: str) -> BaselineServing:
    """Reads `baseline.json` and config.json of a baseline run and restores its sampling network.

    Raises:
      rundir.RunDirectoryError: if `logdir` is not a baseline run with a checkpoint.
    """
    model = rundir.read_baseline_record(logdir)
    cfg = rundir.load_config(logdir)
    name = SAMPLER[model]
    generator = build_baseline(cfg, model)[name]
    rundir.restore_weights(logdir, **{name: generator})
    return BaselineServing(cfg, model, generator)
