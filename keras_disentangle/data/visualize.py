"""Pictures for humans: image grids and annotated examples, written as PNG.

    python -m keras_disentangle.data.visualize dataset --data_dir=RECORDS --dataset=synthetic --out=DIR \
        [--scale=full] [--split=train] [--n=16]

The first positional argument is the mode (`MODES`). `dataset` writes DIR/dataset.png, a contact
sheet of the first `n` examples of a split as the input pipeline delivers them: per example the
image with its keypoints and skeleton (person's right in red, left in blue, centre in green), the body mask
overlaid, and the 7 ROI boxes in distinct labelled colours.

The helpers (`to_uint8`, `upscale`, `picture_scale`, `cells`, `skeletons`, `draw_keypoints`, `draw_boxes`, `overlay_mask`,
`add_caption`, `image_grid`, `save_png`) work on numpy arrays with PIL and serve any picture the
project writes (reconstructions, swaps).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from absl import flags
from PIL import Image, ImageDraw, ImageFont

from keras_disentangle import cli, configs, data
from keras_disentangle.data import geometry

ROI_COLOURS = (
    (230, 25, 75), (245, 130, 48), (255, 225, 25), (60, 180, 75), (70, 240, 240), (0, 130, 200),
    (240, 50, 230),
)
ROI_LABELS = ("head", "upper", "legs", "l_arm", "r_arm", "l_leg", "r_leg")
_SIDE_COLOURS = {"R": (255, 60, 60), "L": (60, 140, 255), "C": (60, 220, 60)}
_TEXT_HEIGHT = 14
UPSCALE = 3  # 64 x 32 tiny images are too small to judge at 1:1.
_BACKGROUND = 255


def _side(joint: int) -> str:
    name = geometry.KEYPOINT_NAMES[joint]
    return name[0] if name[0] in "RL" else "C"


def to_uint8(images) -> np.ndarray:
    """Converts images to uint8 in [0, 255]: the one rule of every picture and image metric.

    uint8 input is returned unchanged. Float input is read as [-1, 1] and mapped with
    `round((x + 1) * 127.5)`, clipped to [0, 255]. The authors' scripts truncated instead of
    rounding (`astype(np.uint8)`), which darkens by half a gray level on average; rounding is used
    here so that uint8 -> [-1, 1] -> uint8 round-trips exactly.

    Args:
      images: array or tensor `(..., 3)`, uint8 or float in [-1, 1].

    Returns:
      uint8 numpy array of the same shape.

    Raises:
      ValueError: if `images` is neither uint8 nor a float dtype.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    # bfloat16 (mixed precision) is not a numpy floating type but converts like one.
    if np.issubdtype(images.dtype, np.integer) or images.dtype.kind not in "fV":
        raise ValueError(
            f"images: expected uint8 in [0, 255] or float in [-1, 1], got dtype {images.dtype}.")
    return np.clip(np.round((images.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of `(H, W, C)` to `(H * factor, W * factor, C)`."""
    if factor < 1:
        raise ValueError(f"factor: expected a positive integer, got {factor}.")
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def picture_scale(cfg: configs.Config) -> int:
    """How many times to enlarge grid cells: 3x for 64-pixel-high tiny images, less for larger ones."""
    return max(1, UPSCALE * 64 // cfg.data.height)


def cells(images, scale: int) -> list[np.ndarray]:
    """Grid cells: images `(n, H, W, 3)` in [-1, 1] as uint8, enlarged `scale` times."""
    return [upscale(image, scale) for image in to_uint8(np.asarray(images))]


def skeletons(keypoints, cfg: configs.Config, scale: int) -> list[np.ndarray]:
    """Grid cells: poses `(n, 18, 2)` at the model's size drawn on white, enlarged `scale` times."""
    blank = np.full((cfg.data.height * scale, cfg.data.width * scale, 3), 255, np.uint8)
    return [draw_keypoints(blank, k, scale=scale, radius=max(2, scale)) for k in np.asarray(keypoints)]


def _canvas(image: np.ndarray) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    canvas = Image.fromarray(np.ascontiguousarray(image))
    return canvas, ImageDraw.Draw(canvas)


def draw_keypoints(image: np.ndarray, keypoints, scale: int = 1, radius: int = 2) -> np.ndarray:
    """Draws the PG2 limbs and the joints on a copy of `image`.

    Args:
      image: uint8 `(H * scale, W * scale, 3)`.
      keypoints: `(18, 2)` (y, x) pixels of the `H x W` image; negative = missing.
      scale: int. How much `image` was enlarged from the size the keypoints refer to.
      radius: int. Joint dot radius in output pixels.

    Returns:
      uint8 array like `image`. Joints and limbs of the person's right side are red, left blue,
      others green.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    canvas, draw = _canvas(image)
    present = (keypoints >= 0).all(axis=-1)
    centres = [((x + 0.5) * scale, (y + 0.5) * scale) for y, x in keypoints]
    for a, b in geometry.LIMBS:
        if present[a] and present[b]:
            side = _side(a) if _side(a) == _side(b) else "C"
            draw.line([centres[a], centres[b]], fill=_SIDE_COLOURS[side], width=max(1, scale // 2))
    for joint in np.flatnonzero(present):
        x, y = centres[joint]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=_SIDE_COLOURS[_side(joint)],
                     outline=(0, 0, 0))
    return np.asarray(canvas)


def draw_boxes(image: np.ndarray, boxes, labels: Sequence[str], colours: Sequence[tuple[int, int, int]],
               visibility=None) -> np.ndarray:
    """Draws labelled boxes on a copy of `image`.

    Args:
      image: uint8 `(H, W, 3)`, any enlargement of the image the boxes refer to.
      boxes: `(N, 4)` normalized (y1, x1, y2, x2), as `geometry.roi_boxes` returns them.
      labels: N strings written in the top-left corner of each box.
      colours: N RGB tuples.
      visibility: optional `(N,)`; boxes with visibility 0 are skipped.

    Returns:
      uint8 array like `image`.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    if not len(boxes) == len(labels) == len(colours):
        raise ValueError(f"boxes, labels, colours: expected equal lengths, got {len(boxes)}, "
                         f"{len(labels)}, {len(colours)}.")
    canvas, draw = _canvas(image)
    font = ImageFont.load_default()
    height, width = image.shape[:2]
    for index, (box, label, colour) in enumerate(zip(boxes, labels, colours)):
        if visibility is not None and visibility[index] < 0.5:
            continue
        y1, x1, y2, x2 = box * [height - 1, width - 1, height - 1, width - 1]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=1)
        left, top, right, bottom = draw.textbbox((x1 + 1, y1), label, font=font)
        draw.rectangle([left - 1, top - 1, right + 1, bottom], fill=colour)
        draw.text((x1 + 1, y1), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def overlay_mask(image: np.ndarray, mask, colour: tuple[int, int, int] = (0, 255, 0), alpha: float = 0.5,
                 outside: float = 0.35) -> np.ndarray:
    """Tints the mask region of `image` with `colour` and darkens the rest.

    Args:
      image: uint8 `(H, W, 3)`.
      mask: `(H, W)` or `(H, W, 1)` in {0, 1}.
      colour: RGB tint of the masked pixels.
      alpha: float. Tint opacity.
      outside: float. Brightness kept outside the mask.

    Returns:
      uint8 `(H, W, 3)`.
    """
    mask = np.asarray(mask, dtype=np.float32).reshape(image.shape[:2] + (1,)) > 0.5
    pixels = image.astype(np.float32)
    tinted = (1.0 - alpha) * pixels + alpha * np.asarray(colour, np.float32)
    return np.where(mask, tinted, outside * pixels).round().astype(np.uint8)


def _text_strip(text: str, width: int, height: int = _TEXT_HEIGHT) -> np.ndarray:
    strip = Image.new("RGB", (width, height), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    if draw.textlength(text, font=font) > width - 2:
        while text and draw.textlength(text + "…", font=font) > width - 2:
            text = text[:-1]
        text += "…"
    draw.text((1, 1), text, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def add_caption(image: np.ndarray, text: str) -> np.ndarray:
    """Adds a strip of text above `image` (truncated with … to the image width)."""
    return np.concatenate([_text_strip(text, image.shape[1]), image], axis=0)


def image_grid(rows: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str] | None = None,
               column_titles: Sequence[str] | None = None, spacing: int = 2) -> np.ndarray:
    """Lays out same-size images in a grid with optional row labels and column titles.

    Args:
      rows: list of rows, each a list of uint8 `(H, W, 3)` images of one shape; rows may be
        shorter than the longest one (the rest stays blank).
      row_labels: optional text per row, written left of it.
      column_titles: optional text per column, written above it (truncated to the column width).
      spacing: int. Blank pixels between cells.

    Returns:
      uint8 `(rows * (H + spacing) + titles, label_width + columns * (W + spacing), 3)`.

    Raises:
      ValueError: for an empty grid, images of different shapes, or label counts that do not match.
    """
    cells = [image for row in rows for image in row]
    if not cells:
        raise ValueError("rows: expected at least one image, got none.")
    shape = cells[0].shape
    for index, image in enumerate(cells):
        if image.shape != shape or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"rows: expected uint8 (H, W, 3) images all of shape {cells[0].shape}, "
                             f"image {index} is {image.dtype} {image.shape}.")
    height, width = shape[:2]
    num_columns = max(len(row) for row in rows)
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"row_labels: expected {len(rows)} labels, got {len(row_labels)}.")
    if column_titles is not None and len(column_titles) != num_columns:
        raise ValueError(f"column_titles: expected {num_columns} titles, got {len(column_titles)}.")
    font = ImageFont.load_default()
    label_width = 0
    if row_labels is not None:
        label_width = 4 + max(int(np.ceil(font.getlength(label))) for label in row_labels)
    title_height = _TEXT_HEIGHT if column_titles is not None else 0
    grid = np.full((title_height + len(rows) * (height + spacing),
                    label_width + num_columns * (width + spacing), 3), _BACKGROUND, np.uint8)
    for column in range(num_columns if column_titles is not None else 0):
        left = label_width + column * (width + spacing)
        grid[:title_height, left:left + width] = _text_strip(column_titles[column], width)
    for row_index, row in enumerate(rows):
        top = title_height + row_index * (height + spacing)
        if row_labels is not None:
            label_height = min(_TEXT_HEIGHT, height)
            offset = top + (height - label_height) // 2
            grid[offset:offset + label_height, :label_width] = _text_strip(
                row_labels[row_index], label_width, label_height)
        for column, image in enumerate(row):
            left = label_width + column * (width + spacing)
            grid[top:top + height, left:left + width] = image
    return grid


def save_png(path: str, image: np.ndarray) -> None:
    """Writes uint8 `(H, W, 3)` as PNG, creating the parent directory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")


def _legend() -> np.ndarray:
    """A strip of colour swatches: the ROI boxes, then the skeleton's sides."""
    items = list(zip(ROI_LABELS, ROI_COLOURS)) + [
        ("right", _SIDE_COLOURS["R"]), ("left", _SIDE_COLOURS["L"]), ("centre", _SIDE_COLOURS["C"])]
    font = ImageFont.load_default()
    width = sum(16 + int(np.ceil(font.getlength(label))) for label, _ in items) + 2
    strip = Image.new("RGB", (width, _TEXT_HEIGHT + 2), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(strip)
    x = 2
    for label, colour in items:
        draw.rectangle([x, 3, x + 9, 12], fill=colour, outline=(0, 0, 0))
        draw.text((x + 12, 2), label, fill=(0, 0, 0), font=font)
        x += 16 + int(np.ceil(font.getlength(label)))
    return np.asarray(strip)


def _stack(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Stacks two uint8 images vertically, padding the narrower one on the right."""
    width = max(top.shape[1], bottom.shape[1])
    padded = [np.pad(part, [(0, 0), (0, width - part.shape[1]), (0, 0)], constant_values=_BACKGROUND)
              for part in (top, bottom)]
    return np.concatenate(padded, axis=0)


def dataset_sheet(batch: dict[str, np.ndarray], per_row: int = 4) -> np.ndarray:
    """The contact sheet of a batch of examples (the batch dict of `data.py`, as numpy).

    Each example becomes a captioned tile of three panels: keypoints and skeleton, body mask,
    ROI boxes. Images are enlarged (nearest) to about 256 pixels high so labels stay readable.

    Args:
      batch: dict with `image (B, H, W, 3)`, `keypoints (B, 18, 2)`, `body_mask (B, H, W, 1)`,
        `roi_boxes (B, 7, 4)`, `roi_visibility (B, 7)` and `name (B,)`.
      per_row: int. Tiles per grid row.

    Returns:
      uint8 `(height, width, 3)`.
    """
    images = to_uint8(batch["image"])
    factor = max(1, 256 // images.shape[1])
    tiles = []
    for index, image in enumerate(images):
        big = upscale(image, factor)
        panels = [
            draw_keypoints(big, batch["keypoints"][index], scale=factor, radius=max(2, factor)),
            overlay_mask(big, upscale(batch["body_mask"][index], factor)),
            draw_boxes(big, batch["roi_boxes"][index], ROI_LABELS, ROI_COLOURS, batch["roi_visibility"][index]),
        ]
        name = batch["name"][index]
        tiles.append(add_caption(image_grid([panels]), name.decode() if isinstance(name, bytes) else str(name)))
    grid = image_grid([tiles[start:start + per_row] for start in range(0, len(tiles), per_row)], spacing=6)
    return _stack(_legend(), grid)


def write_dataset_sheet(data_dir: str, cfg: configs.Config, out: str, n: int = 16, split: str = "train") -> int:
    """Writes the contact sheet (`dataset_sheet`) of the first `n` examples of `split` to `out`.

    Args:
      data_dir: str. Directory of TFRecord shards.
      cfg: Config. Its `data` part sets the image size and the geometry.
      out: str. PNG path.
      n: int. Examples on the sheet (fewer if the split is smaller).
      split: str. Shard prefix.

    Returns:
      The number of examples drawn.

    Raises:
      ValueError: if `n` is not positive or `data_dir` has no shard of `split`.
    """
    if n < 1:
        raise ValueError(f"n: expected a positive number of examples, got {n}.")
    batches = data.eval_dataset(data_dir, cfg, split=split, batch_size=n)
    batch = {key: value.numpy() for key, value in next(iter(batches)).items()}
    save_png(out, dataset_sheet(batch))
    return len(batch["image"])


def _dataset_mode(flag_values: flags.FlagValues) -> str:
    cfg = configs.get_config(flag_values.dataset, flag_values.scale)
    out = os.path.join(flag_values.out, DATASET_SHEET)
    count = write_dataset_sheet(flag_values.data_dir, cfg, out, flag_values.n, flag_values.split)
    return f"wrote {out}: {count} {flag_values.split} examples of {flag_values.data_dir}"


# What each mode writes inside --out.
DATASET_SHEET = "dataset.png"
MODES: dict[str, Callable[[flags.FlagValues], str]] = {
    "dataset": _dataset_mode,
}


def define_flags() -> None:
    cli.define_shared("data_dir", required=True)
    cli.define_shared("dataset", default=configs.DEFAULT_DATASET)
    cli.define_shared("scale", default=configs.DEFAULT_SCALE, note="It sets the image size.")
    cli.define_shared("split", default="train")
    cli.define_shared("out", note=f"The PNG (dataset: {DATASET_SHEET}).", required=True)
    cli.define_shared("n", default=16, note="Examples on the sheet.", lower_bound=1)


def main(argv: list[str]) -> None:
    print(MODES[cli.mode(argv, list(MODES))](flags.FLAGS))


if __name__ == "__main__":
    cli.run(main, define_flags)
