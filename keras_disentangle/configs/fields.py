"""The dataclasses of a run: data, model and training settings, and the sizes they use (their
choices are in `configs.choices`)."""

from __future__ import annotations

import dataclasses

from keras_disentangle.configs.choices import (
    D1Loss,
    D1Normalization,
    Dataset,
    Factor,
    FgEncoderKind,
    Precision,
    Scale,
    Stage2Rmsprop,
    coerce_choices,
)

NUM_KEYPOINTS = 18
NUM_ROIS = 7
POSE_VECTOR_DIM = 3 * NUM_KEYPOINTS  # 18 x (y, x) + 18 visibility flags = 54.


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What the input pipeline produces.

    Attributes:
      name: Dataset. `market`, `deepfashion` or `synthetic`.
      height, width: int. Size of the images fed to the models. Records are resized to it, and
        keypoints are scaled with them.
      stored_height, stored_width: int. The size the dataset's photos and annotations use (Market
        128x64, DeepFashion 256x256). Converters reject records of another size, except DeepFashion's
        256x176 release, which `data.frame_photo` pads back to 256x256.
      heatmap_radius: int. Radius in pixels (at `height x width`) of the binary pose disks.
      mask_radius: int. Radius of the limb disks of the coarse body mask that splits FG from BG.
      mask_close_size: int. Side of the square structuring element of the morphological close.
      roi_pad: int. Padding in pixels around the joints of a body ROI (`roi_pad_single` when only
        one joint of the ROI is present).
      roi_head_raise: int. Pixels the nose is moved up before the head ROI is boxed, so that the
        box holds the hair (the authors' DeepFashion conversion: 10 at 256x256; Market: 0).
      roi_pad_close_up, roi_pad_single_close_up, roi_head_raise_close_up: int or None. The same
        three values for a close-up, a photo in which the lower legs are not both seen (no knee or
        ankle of one leg): the authors' DeepFashion conversion pads such photos 20 / 40 and raises
        the nose 25 px (their whole-body values 10 / 20 / 10). None: as for a whole body.
      has_background: bool. Whether the background is a factor of its own (Market) or part of the
        appearance (DeepFashion's clean studio backgrounds).
      pose_missing_coordinate: float. The value both coordinates of a missing joint take in the 54-d
        pose vector (`geometry.pose_vector`): -1 is the authors' (their records store a missing
        joint at row 0, column 0, which their normalization maps to -1); 0 is what runs written
        before this field used (a config.json without it reads 0).
    """

    name: Dataset
    height: int
    width: int
    stored_height: int
    stored_width: int
    heatmap_radius: int = 4
    mask_radius: int = 7
    mask_close_size: int = 5
    roi_pad: int = 6
    roi_pad_single: int = 10
    has_background: bool = True
    roi_head_raise: int = 0
    roi_pad_close_up: int | None = None
    roi_pad_single_close_up: int | None = None
    roi_head_raise_close_up: int | None = None
    pose_missing_coordinate: float = 0.0

    def __post_init__(self) -> None:
        coerce_choices(self)

    @property
    def roi_options(self) -> dict:
        """The keyword arguments of `geometry.roi_boxes` after this config."""
        whole = (self.roi_pad, self.roi_pad_single, self.roi_head_raise)
        close_up = (self.roi_pad_close_up, self.roi_pad_single_close_up, self.roi_head_raise_close_up)
        return {"pad": whole[0], "pad_single": whole[1], "head_raise": whole[2],
                "close_up": tuple(w if c is None else c for w, c in zip(whole, close_up))}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes of every network. Channel tuples list one entry per residual level.

    Attributes:
      first_block_channels: int. Width of the first conv + residual block applied to the image.
      encoder_channels: tuple of int. Levels of the FG (shared ROI) and BG encoders; a stride-2
        conv sits between consecutive levels.
      roi_size: int. Side of each ROI crop (crop-and-resize output).
      roi_embedding_dim: int. Embedding size per body ROI; the FG embedding is 7 x this.
      bg_embedding_dim: int. Size of the background embedding (0 when the dataset has no BG).
      fg_encoder: FgEncoderKind. BodyROI7 or WholeBody.
      fg_features_masked: bool. Whether the FG encoder reads the first-block features times the
        body mask (the paper; the authors' Market code) or the unmasked features (the authors'
        DeepFashion code, which has no BG branch to lose anything to: hair and loose clothes
        outside the limb mask stay visible to the ROIs).
      generator_channels: tuple of int. Levels of the U-Net generator.
      generator_bottleneck_dim: int. Width of the fully connected bottleneck of the U-Net.
      appearance_in_up_path: bool. Whether every level of the U-Net's up path reads the tiled
        appearance embedding too, beside its skip (not in the paper). False: the paper's design,
        where the embedding enters only through the stem, a linear map to `generator_channels[0]`
        features shared with the heatmaps, so the layers that draw each pixel see at most that many
        combinations of the 352-d code (16 of 88 at micro: clothes came out grey; docs/experiments/colour.md).
      d1_channels: tuple of int. DCGAN discriminator conv widths (5x5, stride 2).
      d1_normalization: D1Normalization. `batch`: batch norm on all convs but the
        first (DCGAN; the authors' D1); `none`: no normalization (in the paper's design space: batch
        norm over a batch of 8-16 is noisy); `spectral`: spectral normalization of every D1 layer
        and no batch norm (Miyato et al. 2018; not in the paper).
      pose_hidden_dim: int. Width of the pose auto-encoder's FC residual blocks.
      pose_num_blocks: int. FC residual blocks in each half of the pose auto-encoder.
      pose_embedding_dim: int. The pose embedding (the auto-encoder's bottleneck).
      pose_leaky_slope: float. Negative slope of the pose auto-encoder's LeakyReLUs: 0.2 is the
        authors' (`wgan_gp.LeakyReLU`, which their trainer's star import resolves to); 0.3, what
        runs written before this field used, came from a misreading (a config.json without it
        reads 0.3). The paper says ReLU.
      pose_decoder_linear_input: bool. Whether the pose decoder's first FC layer is linear, as
        the authors' (`PoseDecoderFCRes`, `activation_fn=None`); False activates it (runs written
        before this field).
      mapper_hidden_dims: dict factor -> int. Width of each stage-II mapper (as a tuple of pairs so
        the dataclass stays hashable).
      mapper_num_blocks: int. FC residual blocks in a mapper.
      critic_hidden_dim: int. Width of the stage-II critic D2.
      critic_num_layers: int. Hidden FC layers of D2.
      d1_initializer: str, one of `D1_INITIALIZERS`. D1's conv and logit kernels: `glorot_uniform`
        (Keras' default; runs written before this field) or `dcgan_uniform`, uniform with stddev
        0.02, the authors' (`DCGANDiscriminator` under `set_weights_stdev(0.02)`).
      critic_initializer: str, one of `CRITIC_INITIALIZERS`. D2's hidden kernels: `glorot_uniform`
        (Keras' default; runs written before this field) or `he_uniform`, the authors'
        (`LeakyReLULayer`, `initialization='he'`); the score layer stays Glorot-uniform, as theirs.
      baseline_latent_dim: int. Size of the Gaussian code of the VAE / DCGAN baselines (DCGAN: 100).
      baseline_channels: tuple of int. Widths of the baselines' image generator (the VAE decoder and
        the DCGAN generator), deepest last; the VAE encoder is D1's conv stack (`d1_channels`).
    """

    first_block_channels: int = 128
    encoder_channels: tuple[int, ...] = (128, 256, 384, 512, 640)
    roi_size: int = 48
    roi_embedding_dim: int = 32
    bg_embedding_dim: int = 128
    fg_encoder: FgEncoderKind = FgEncoderKind.BODY_ROI7
    fg_features_masked: bool = True
    generator_channels: tuple[int, ...] = (128, 256, 384, 512, 640)
    generator_bottleneck_dim: int = 64
    appearance_in_up_path: bool = False
    d1_channels: tuple[int, ...] = (64, 128, 256, 512)
    d1_normalization: D1Normalization = D1Normalization.BATCH
    pose_hidden_dim: int = 512
    pose_num_blocks: int = 4
    pose_embedding_dim: int = 32
    pose_leaky_slope: float = 0.3
    pose_decoder_linear_input: bool = False
    mapper_hidden_dims: tuple[tuple[str, int], ...] = (("fg", 512), ("bg", 256), ("pose", 512))
    mapper_num_blocks: int = 4
    critic_hidden_dim: int = 512
    critic_num_layers: int = 4
    d1_initializer: str = "glorot_uniform"
    critic_initializer: str = "glorot_uniform"
    baseline_latent_dim: int = 100
    baseline_channels: tuple[int, ...] = (64, 128, 256, 512)

    def __post_init__(self) -> None:
        coerce_choices(self)

    @property
    def fg_embedding_dim(self) -> int:
        return NUM_ROIS * self.roi_embedding_dim

    @property
    def appearance_embedding_dim(self) -> int:
        """FG + BG: what the generator is conditioned on besides the heatmaps (352 for Market)."""
        return self.fg_embedding_dim + self.bg_embedding_dim

    def embedding_dim(self, factor: Factor | str) -> int:
        """K of the stage-II mapper for `factor` (224 FG, 128 BG, 32 pose at full Market scale)."""
        factor = Factor(factor)
        return {
            Factor.FOREGROUND: self.fg_embedding_dim,
            Factor.BACKGROUND: self.bg_embedding_dim,
            Factor.POSE: self.pose_embedding_dim,
        }[factor]

    def mapper_hidden_dim(self, factor: Factor | str) -> int:
        return dict(self.mapper_hidden_dims)[Factor(factor).value]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of the training loops.

    Attributes:
      batch_size: int. Global batch size (split over replicas by tf.distribute).
      learning_rate: float. Adam learning rate of stage I (the paper uses 2e-5 on GPUs for ~70k
        steps; the tiny scale uses 3e-4 so that minutes suffice).
      beta_1, beta_2: float. Adam moments.
      adam_epsilon: float. The epsilon of every stage-I Adam: 1e-8 is TF1's `tf.train.AdamOptimizer`
        default, which the authors ran; 1e-7 is Keras' (runs written before this field).
      l1_weight: float. lambda of the L1 term of the stage-I generator loss (Eq. 2); the authors'
        trainer multiplies by a literal 20 (`trainer.py:322/623`; their `--L1Loss_weight` flag is never
        read), the paper gives no value.
      lr_halving_steps: int. Every optimizer's learning rate is halved every this many training
        steps (the authors' `lr_update_step`, 50k in their scripts); 0 keeps it constant. A
        staircase `keras.optimizers.schedules.ExponentialDecay` driven by `optimizer.iterations`,
        so a resumed run continues on the schedule.
      adversarial_weight: float. Weight of the BCE adversarial term (0 trains L1 only).
      d1_learning_rate: float. Adam learning rate of D1; 0 uses `learning_rate` (the paper and the
        authors' code use one rate for G1 and D1).
      d1_joint_batch: bool. D1 scores real and generated images in one call, so its batch
        normalization pools both (the authors' DeepFashion trainer, `trainer_256.py:61-63`); False: two
        calls (their Market trainer, `trainer.py:601-602`).
      adversarial_start_step: int. Steps of L1 only before D1 and the adversarial term start (a
        warm-up; not in the paper).
      real_label: float. BCE target of real images for D1; below 1 is one-sided label smoothing
        (Salimans et al. 2016; not in the paper).
      d1_every: int. D1 is updated on every k-th step only (G1 every step): a k:1 G1:D1 update ratio.
        Needs a single-replica strategy (the skip is a `tf.cond`, which cannot hold a cross-replica
        gradient sum).
      d1_steps: int. D1 updates per step on which it updates, each on the same real and generated
        batch (a 1:n ratio; the paper and the authors' code: 1).
      d1_loss: D1Loss. `bce`: the paper's Eq. 1-2; `hinge`: D1 minimizes
        0.5 * (relu(1 - D1(x)) + relu(1 + D1(G1(x, h)))), G1 the mean of -D1(G1(x, h)) (Lim & Ye
        2017, Miyato et al. 2018; not in the paper; `real_label` does not apply).
      d1_r1_weight: float. gamma of the R1 penalty gamma / 2 * |grad_x D1(x)|^2 on real images added to
        D1's loss (Mescheder et al. 2018; not in the paper); 0: none.
      steps: int. Training steps to run (the loop stops there; resuming continues to it).
      checkpoint_every: int. Steps between checkpoints (one is also written on exit).
      log_every: int. Steps between TensorBoard scalar summaries.
      image_every: int. Steps between TensorBoard image grids.
      keep_checkpoints: int. How many checkpoints CheckpointManager keeps.
      pose_batch_size: int. Batch of the pose auto-encoder, whether it trains alone or beside the
        appearance networks (`--model=both` draws its own batch of poses). Market 64 (the paper);
        DeepFashion 16 (the authors' script; the paper says 32).
      pose_learning_rate: float. Adam learning rate of the pose auto-encoder.
      pose_steps: int. Training steps of the pose auto-encoder (the authors' scripts: Market 60k,
        DeepFashion 120k; the paper says ~30k); 0: `steps` (runs written before this field).
        `--model=both` trains both parts in each step up to the smaller budget, then the part with
        steps left alone up to the larger (`training.stage1.phases`).
      mapper_batch_size: int. Stage-II batch of a factor not in `mapper_batch_sizes`.
      mapper_learning_rate: float. RMSProp learning rate of stage II (paper 2e-5) of a factor not in
        `mapper_learning_rates`.
      mapper_batch_sizes, mapper_steps, mapper_learning_rates: tuple of (factor, value) pairs. The
        stage-II budget per factor (the paper, supplementary B: Market FG/BG batch 32 x ~30k, pose
        32 x ~60k; DeepFashion appearance 16 x ~60k, pose 32 x ~60k). A factor not listed uses
        `mapper_batch_size`, `steps` and `mapper_learning_rate`; `stage2_train` resolves them.
      critic_steps: int. Critic updates per mapper update (the paper: 5).
      critic_clip: float. WGAN weight clipping bound (the paper: 0.01).
      gradient_penalty_weight: float. WGAN-GP weight; 0 uses clipping instead.
      stage2_rmsprop: Stage2Rmsprop. The RMSProp of Phi and D2: `keras` (runs
        written before this field) or `tf1` (`optimizers.TF1RMSprop`), the authors'. Their first
        steps differ: Keras' is ~3.2 lr sign(g) (1 / sqrt(0.1)), TF1's ~lr g.
      noise_stddev: float. Stddev of the mapper's Gaussian input z (the authors' code: 0.2).
      seed: int. Seed of weights, shuffling and noise.
      precision: Precision. Keras dtype policy (`keras_disentangle.precision`); `auto` picks
        mixed_bfloat16 where the hardware has bf16 arithmetic, float32 elsewhere. A run's
        config.json records the resolved policy (files written before this field read as `auto`).
      steps_per_execution: int. Training steps per `tf.function` call; losses reach the host only
        at log steps, so an accelerator is not idled by a host round trip every step.
      baseline_learning_rate: float. Adam learning rate of the VAE / DCGAN baselines (DCGAN's 2e-4).
      vae_kl_weight: float. Weight of the VAE's KL term against its summed squared error (1: the
        ELBO of a unit-variance Gaussian decoder up to a factor 2).
    """

    batch_size: int = 16
    learning_rate: float = 2e-5
    beta_1: float = 0.5
    beta_2: float = 0.999
    adam_epsilon: float = 1e-7
    l1_weight: float = 20.0
    lr_halving_steps: int = 0
    adversarial_weight: float = 1.0
    d1_learning_rate: float = 0.0
    d1_joint_batch: bool = False
    adversarial_start_step: int = 0
    real_label: float = 1.0
    d1_every: int = 1
    d1_steps: int = 1
    d1_loss: D1Loss = D1Loss.BCE
    d1_r1_weight: float = 0.0
    steps: int = 70_000
    checkpoint_every: int = 1000
    log_every: int = 100
    image_every: int = 1000
    keep_checkpoints: int = 3
    pose_batch_size: int = 64
    pose_learning_rate: float = 2e-5
    pose_steps: int = 0
    mapper_batch_size: int = 32
    mapper_learning_rate: float = 2e-5
    mapper_batch_sizes: tuple[tuple[str, int], ...] = ()
    mapper_steps: tuple[tuple[str, int], ...] = ()
    mapper_learning_rates: tuple[tuple[str, float], ...] = ()
    critic_steps: int = 5
    critic_clip: float = 0.01
    gradient_penalty_weight: float = 0.0
    stage2_rmsprop: Stage2Rmsprop = Stage2Rmsprop.KERAS
    noise_stddev: float = 0.2
    seed: int = 0
    precision: Precision = Precision.AUTO
    steps_per_execution: int = 1
    baseline_learning_rate: float = 2e-4
    vae_kl_weight: float = 1.0

    def __post_init__(self) -> None:
        coerce_choices(self)


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    scale: Scale = Scale.FULL

    def __post_init__(self) -> None:
        coerce_choices(self)
