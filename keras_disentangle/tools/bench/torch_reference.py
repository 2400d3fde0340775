"""A PyTorch reference of the stage-I appearance training step, for a side-by-side speed ratio only.

**Benchmark-only. PyTorch is not a dependency of this project**: nothing but
`keras_disentangle.tools.bench.versus_torch` imports this module, and it needs PyTorch installed in a
venv of its own, next to the project's requirements (docs/experiments/versus-pytorch.md):

    python -m venv /work/torchvenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /work/torchvenv/lib/python3.11/site-packages/project.pth
    /work/torchvenv/bin/python -m pip install torch==2.13.0   # the CPU build

The networks mirror `build_stage1`'s appearance encoder (first block, mask split, BodyROI7 FG
encoder over `RoiAlign` crops, BG encoder), the U-Net generator and D1, layer for layer: the same
convolutions (sizes, strides, bias or not), dense layers, residual adds, concatenations, nearest
upsampling and batch normalization, so that the parameter count and the FLOPs of a training step
are the same (`versus_torch` asserts both). The step is `steps.appearance_step` with the paper's
loss: D1 on (real, fake), then G1 on lambda * L1 + BCE, two Adams (epsilon as Keras's). The layout
is PyTorch's (NCHW, or channels-last memory), "same" padding is symmetric (TensorFlow pads the
extra row of a stride-2 conv at the bottom): the work is identical, the numbers are not, and no
weights are shared with the Keras model. What is compared is speed, never outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from keras_disentangle.configs import NUM_KEYPOINTS, NUM_ROIS, Config


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=bias)


class Residual(nn.Module):
    """`layers.residual_conv_block`: two 3x3 ReLU convs added to the (1x1-projected) input."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.projection = _conv(c_in, c_out, 1) if c_in != c_out else None
        self.conv1, self.conv2 = _conv(c_in, c_out, 3), _conv(c_out, c_out, 3)

    def forward(self, x):
        shortcut = x if self.projection is None else self.projection(x)
        return shortcut + F.relu(self.conv2(F.relu(self.conv1(x))))


class ConvEncoder(nn.Module):
    """`encoders._conv_encoder` + its dense embedding: residual levels, stride-2 convs between them."""

    def __init__(self, c_in: int, channels: tuple[int, ...], size: tuple[int, int], dim: int):
        super().__init__()
        self.downs, self.levels = nn.ModuleList(), nn.ModuleList()
        height, width = size
        for level, c_out in enumerate(channels):
            if level:
                self.downs.append(_conv(c_in, c_out, 3, stride=2))
                c_in, height, width = c_out, -(-height // 2), -(-width // 2)
            self.levels.append(Residual(c_in, c_out))
            c_in = c_out
        self.embedding = nn.Linear(height * width * c_in, dim)

    def forward(self, x):
        for level, residual in enumerate(self.levels):
            if level:
                x = F.relu(self.downs[level - 1](x))
            x = residual(x)
        return self.embedding(torch.flatten(x, 1))


def _interpolation_weights(start, end, size: int, crop_size: int):
    """`layers._interpolation_weights`: bilinear sampling weights `[..., crop_size, size]`."""
    scale = float(size - 1)
    offsets = torch.arange(crop_size, dtype=torch.float32)
    positions = start[..., None] * scale + offsets * ((end - start) * scale / float(crop_size - 1))[..., None]
    weights = F.relu(1.0 - (positions[..., None] - torch.arange(size, dtype=torch.float32)).abs())
    inside = (positions >= 0.0) & (positions <= scale)
    return weights * inside[..., None].to(weights.dtype)


def roi_align(features, boxes, crop_size: int):
    """`layers.RoiAlign` on NCHW features: the same two einsums -> `(batch * 7, C, S, S)`."""
    height, width = features.shape[2], features.shape[3]
    rows = _interpolation_weights(boxes[..., 0], boxes[..., 2], height, crop_size).to(features.dtype)
    cols = _interpolation_weights(boxes[..., 1], boxes[..., 3], width, crop_size).to(features.dtype)
    sampled_rows = torch.einsum("bnih,bchw->bnciw", rows, features)
    crops = torch.einsum("bnjw,bnciw->bncij", cols, sampled_rows)
    return crops.reshape(-1, features.shape[1], crop_size, crop_size)


class AppearanceEncoder(nn.Module):
    """`encoders.build_appearance_encoder` (BodyROI7, with background)."""

    def __init__(self, cfg: Config):
        super().__init__()
        m, size = cfg.model, (cfg.data.height, cfg.data.width)
        self.roi_size, self.roi_dim = m.roi_size, m.roi_embedding_dim
        self.stem = _conv(3, m.first_block_channels, 3)
        self.residual = Residual(m.first_block_channels, m.first_block_channels)
        self.roi_encoder = ConvEncoder(m.first_block_channels, m.encoder_channels, (m.roi_size,) * 2,
                                       m.roi_embedding_dim)
        self.bg_encoder = ConvEncoder(m.first_block_channels, m.encoder_channels, size, m.bg_embedding_dim)

    def forward(self, image, body_mask, roi_boxes, roi_visibility):
        features = self.residual(F.relu(self.stem(image)))
        crops = roi_align(features * body_mask, roi_boxes, self.roi_size)
        per_roi = self.roi_encoder(crops).reshape(-1, NUM_ROIS, self.roi_dim) * roi_visibility[..., None]
        return torch.cat([per_roi.flatten(1), self.bg_encoder(features * (1.0 - body_mask))], dim=1)


class Generator(nn.Module):
    """`generator.build_generator`: the U-Net from the tiled embedding and the heatmaps."""

    def __init__(self, cfg: Config):
        super().__init__()
        channels = cfg.model.generator_channels
        self.size = (cfg.data.height, cfg.data.width)
        factor = 2 ** (len(channels) - 1)
        self.bottom = (channels[0], self.size[0] // factor, self.size[1] // factor)
        self.stem = _conv(cfg.model.appearance_embedding_dim + NUM_KEYPOINTS, channels[0], 3)
        self.down = nn.ModuleList(Residual(c, c) for c in channels)
        self.stride2 = nn.ModuleList(_conv(a, b, 3, stride=2) for a, b in zip(channels, channels[1:]))
        bottom_features = channels[-1] * self.bottom[1] * self.bottom[2]
        self.bottleneck = nn.Linear(bottom_features, cfg.model.generator_bottleneck_dim)
        self.expand = nn.Linear(cfg.model.generator_bottleneck_dim, channels[0] * self.bottom[1] * self.bottom[2])
        self.up, self.up_1x1 = nn.ModuleList(), nn.ModuleList()
        width = channels[0]
        for level in reversed(range(len(channels))):
            width += channels[level]
            self.up.append(Residual(width, width))
            if level:
                self.up_1x1.append(_conv(width, channels[level - 1], 1))
                width = channels[level - 1]
        self.image = _conv(width, 3, 3)

    def forward(self, embedding, heatmaps):
        tiled = embedding[:, :, None, None].expand(-1, -1, *self.size)
        x = F.relu(self.stem(torch.cat([tiled, heatmaps], dim=1)))
        skips = []
        for level, residual in enumerate(self.down):
            x = residual(x)
            skips.append(x)
            if level < len(self.stride2):
                x = F.relu(self.stride2[level](x))
        x = self.expand(self.bottleneck(torch.flatten(x, 1))).reshape(-1, *self.bottom)
        for index, residual in enumerate(self.up):
            x = residual(torch.cat([x, skips[len(skips) - 1 - index]], dim=1))
            if index < len(self.up_1x1):
                x = F.relu(self.up_1x1[index](F.interpolate(x, scale_factor=2, mode="nearest")))
        return self.image(x)


class D1(nn.Module):
    """`discriminators.build_d1`: 5x5 stride-2 convs, batch norm on all but the first, LeakyReLU 0.2."""

    def __init__(self, cfg: Config):
        super().__init__()
        layers, c_in = [], 3
        height, width = cfg.data.height, cfg.data.width
        for index, c_out in enumerate(cfg.model.d1_channels):
            layers.append(_conv(c_in, c_out, 5, stride=2, bias=index == 0))
            if index:
                # Keras's BatchNormalization: epsilon 1e-3, moving averages at momentum 0.99.
                layers.append(nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01))
            layers.append(nn.LeakyReLU(0.2))
            c_in, height, width = c_out, -(-height // 2), -(-width // 2)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.logit = nn.Linear(c_in * height * width, 1)

    def forward(self, image):
        return self.logit(self.features(image))


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable parameters, batch-norm moving statistics), as Keras counts trainable / non-trainable."""
    buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    return sum(p.numel() for p in module.parameters()), buffers


class Stage1Step:
    """`steps.appearance_step` with the paper's loss (`adversarial_weight > 0`) or L1 only.

    Args:
      cfg: Config (Market presets). Uses the model sizes and `train.learning_rate`, `beta_1/2`,
        `l1_weight`, `adversarial_weight`.
      channels_last: bool. Keep activations and weights in channels-last memory (PyTorch's faster
        layout for oneDNN convolutions on CPUs).
      autocast: torch dtype or None. Run forward and backward under `torch.autocast("cpu", dtype)`
        (bfloat16: PyTorch's counterpart of the `mixed_bfloat16` policy).
    """

    def __init__(self, cfg: Config, channels_last: bool = False, autocast: torch.dtype | None = None):
        torch.manual_seed(cfg.train.seed)
        self.cfg, self.autocast = cfg.train, autocast
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.encoder, self.generator = AppearanceEncoder(cfg), Generator(cfg)
        self.d1 = D1(cfg) if cfg.train.adversarial_weight > 0 else None
        self.g_parameters = [*self.encoder.parameters(), *self.generator.parameters()]
        adam = dict(lr=cfg.train.learning_rate, betas=(cfg.train.beta_1, cfg.train.beta_2), eps=1e-7)
        self.g_optimizer = torch.optim.Adam(self.g_parameters, **adam)
        self.d_optimizer = torch.optim.Adam(self.d1.parameters(), **adam) if self.d1 else None
        for network in self.networks():
            network.to(memory_format=self.memory_format).train()

    def networks(self) -> list[nn.Module]:
        return [n for n in (self.encoder, self.generator, self.d1) if n is not None]

    def batch(self, tf_batch: dict) -> dict:
        """The torch tensors of a `data.train_dataset` batch (NHWC -> NCHW, in `memory_format`)."""
        out = {}
        for key in ("image", "body_mask", "heatmaps", "roi_boxes", "roi_visibility"):
            value = torch.from_numpy(tf_batch[key].numpy()).float()
            if value.dim() == 4:
                value = value.permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format)
            out[key] = value
        return out

    def losses(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(G1's loss, D1's loss or None, the L1 term) of one forward pass."""
        embedding = self.encoder(batch["image"], batch["body_mask"], batch["roi_boxes"], batch["roi_visibility"])
        fake = self.generator(embedding, batch["heatmaps"]).float()
        l1 = (fake - batch["image"]).abs().mean()
        g_loss = self.cfg.l1_weight * l1
        if self.d1 is None:
            return g_loss, None, l1
        real_logits, fake_logits = self.d1(batch["image"]).float(), self.d1(fake).float()
        bce = F.binary_cross_entropy_with_logits
        d_loss = 0.5 * (bce(real_logits, torch.full_like(real_logits, self.cfg.real_label))
                        + bce(fake_logits, torch.zeros_like(fake_logits)))
        g_loss = g_loss + self.cfg.adversarial_weight * bce(fake_logits, torch.ones_like(fake_logits))
        return g_loss, d_loss, l1

    def __call__(self, batch: dict) -> dict:
        """One training step; returns the losses as floats (which waits for the step)."""
        with torch.autocast("cpu", dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None):
            g_loss, d_loss, l1 = self.losses(batch)
        # Both gradients from this forward pass before either network moves (as the Keras step's tape);
        # D1's of d_loss only, G1's of g_loss only.
        if d_loss is not None:
            d_parameters = list(self.d1.parameters())
            d_gradients = torch.autograd.grad(d_loss, d_parameters, retain_graph=True)
        for parameter, gradient in zip(self.g_parameters, torch.autograd.grad(g_loss, self.g_parameters)):
            parameter.grad = gradient
        if d_loss is not None:
            for parameter, gradient in zip(d_parameters, d_gradients):
                parameter.grad = gradient
            self.d_optimizer.step()
        self.g_optimizer.step()
        logs = {"loss/g1/total": g_loss.item(), "loss/g1/l1": l1.item()}
        if d_loss is not None:
            logs["loss/d1"] = d_loss.item()
        return logs
