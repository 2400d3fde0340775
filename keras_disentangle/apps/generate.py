"""Generates pictures with a trained model: sampling, swaps, pose transfer, interpolations.

  python -m keras_disentangle.apps.generate MODE --stage2_dir=DIR [--stage2_dir=DIR ...] --out=DIR \\
      [--stage1_dir=DIR] [--data_dir=DIR] [--n=8] [--seed=0] [--save_npz]
  python -m keras_disentangle.apps.generate transfer|swap --stage1_dir=DIR --out=DIR ...

`--stage2_dir` is repeated once per factor (each stage-II run's `stage2.json` names its factor and
its stage-I run, so `--stage1_dir` is only needed when the stage-I run has moved). `transfer` and
`swap` need stage I only: `--stage1_dir` alone is enough. Every mode writes `OUT/<mode>.png`, a
labelled grid, and with `--save_npz` `OUT/<mode>.npz`, the raw arrays.

Modes:
  sample --factors=fg,bg,pose          the listed factors sampled from noise, the others taken from
                                       real test images of --data_dir; all factors = new people.
  swap --source=IMG --target=IMG --factors=fg[,bg,pose] [--parts=head,upper_body,...]
                                       the target with the source's factors; --parts swaps only
                                       those FG body ROIs (clothing-part transfer).
  transfer --source=IMG (--pose=IMG | --pose_keypoints=KP)
                                       the source person in another pose (KP alone: pixels of
                                       the dataset's stored size, e.g. 128 x 64 for Market).
  interpolate --factor=fg [--frames=8] [--method=both]
                                       walks between noise vectors of one factor (linear, slerp).
  invert_interpolate --a=IMG --b=IMG [--frames=8] [--invert_steps=300]
                                       inverts both images' embeddings into z by gradient descent,
                                       walks between them; prints the final ||Phi(z) - e||^2.

Images (IMG) are files or bare file names. Their keypoints come from
`--<flag>_keypoints="[y0, ..., y17]:[x0, ..., x17]"` (the annotation-CSV syntax, pixels of the file as
stored, -1 = missing) or `--<flag>_keypoints=FILE.json` (OpenPose or our JSON, docs/CONTRACTS.md), else from the record of that file name in --data_dir (test split, then train),
else, for any photo file, from the built-in estimator (`keras_disentangle.pose.keypoints`; the models
come from `make pose-models`). An estimated photo is framed on its person at the model's aspect
ratio (padded, never squashed); `transfer` and `swap` then also write `OUT/<mode>_photo.png`, the
result pasted back into the photo whose framing it has (the source for transfer, the target for
swap). Images are resized to the model's size as the input pipeline does.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from keras_disentangle import apps, cli, configs, data  # noqa: E402
from keras_disentangle.data import geometry, visualize  # noqa: E402
from keras_disentangle.pose import keypoints  # noqa: E402
# Reading the command's images; the names stay importable from here (`generate.load_images`, ...).
from keras_disentangle.apps.generate_inputs import (  # noqa: E402, F401
    Framing,
    load_images,
    paste_back,
    parse_keypoints,
    records_by_name,
)
from keras_disentangle.serving.runtime import Stage1Serving, Stage2Serving, load_stage1, load_stage2  # noqa: E402
from keras_disentangle.data.visualize import cells, picture_scale, skeletons  # noqa: E402

MODES = ("sample", "swap", "transfer", "interpolate", "invert_interpolate")
_DEFAULTS = configs.GenerateConfig()


@dataclasses.dataclass(frozen=True)
class Request:
    """One `generate` command, as the flags give it (see the module docstring).

    Attributes:
      mode: str. One of `MODES`.
      stage2_dirs: tuple of str. Stage-II run directories, one per factor.
      out: str. Output directory.
      stage1_dir: str or None. Overrides the stage-I run recorded by the stage-II runs.
      data_dir: str or None. TFRecords: real images and keypoints by file name.
      n: int. Images (sample) or rows (interpolate).
      seed: int.
      factors: tuple of str. Sampled (sample) or swapped (swap) factors.
      parts: tuple of str. FG body ROIs to swap.
      factor: str. Interpolated factor.
      images: dict flag -> IMG for `source`, `target`, `pose`, `a`, `b`.
      keypoints: dict flag -> keypoints text for those images (`pose` without a `pose` image:
        the target pose of `transfer`, in pixels of the dataset's stored size).
      frames: int. Images per interpolation, endpoints included.
      method: str. `linear`, `slerp` or `both`.
      invert_steps: int. Gradient steps per inversion.
      save_npz: bool.
    """

    mode: str
    stage2_dirs: tuple[str, ...]
    out: str
    stage1_dir: str | None = None
    data_dir: str | None = None
    n: int = _DEFAULTS.n
    seed: int = _DEFAULTS.seed
    factors: tuple[str, ...] = _DEFAULTS.factors
    parts: tuple[str, ...] = ()
    factor: str = _DEFAULTS.factor
    images: dict = dataclasses.field(default_factory=dict)
    keypoints: dict = dataclasses.field(default_factory=dict)
    frames: int = _DEFAULTS.frames
    method: str = _DEFAULTS.method
    invert_steps: int = _DEFAULTS.invert_steps
    save_npz: bool = False


def _real_test_examples(models: Stage2Serving, data_dir: str | None, n: int, seed: int) -> dict:
    if not data_dir:
        raise ValueError("--data_dir: the factors not sampled come from real test images; give the TFRecords.")
    pool = data.load_examples(data_dir, models.cfg, split="test", limit=max(n, 256))
    if len(pool["image"]) < n:
        raise ValueError(f"--n={n}: {data_dir} has only {len(pool['image'])} test images.")
    chosen = np.sort(np.random.default_rng(seed).choice(len(pool["image"]), n, replace=False))
    return {k: v[chosen] for k, v in pool.items()}


def _sample(models: Stage2Serving, request: Request, scale: int) -> tuple[np.ndarray, dict]:
    factors = apps.parse_factors(request.factors, models)
    real = None
    if len(factors) < len(models.factors):
        real = _real_test_examples(models, request.data_dir, request.n, request.seed)
    out = apps.sample(models, request.n, request.seed, factors, real)
    label = "sampled " + "+".join(f.value for f in factors)
    rows, labels = [cells(out["image"], scale), skeletons(out["keypoints"], models.cfg, scale)], [label, "  pose"]
    arrays = {k: np.asarray(v) for k, v in out.items()}
    if real is not None:
        rows.insert(0, cells(real["image"], scale))
        labels.insert(0, "real")
        arrays["real_image"] = real["image"]
    return visualize.image_grid(rows, row_labels=labels), arrays


def _image_spec(request: Request, flag: str) -> tuple[str, str, str | None]:
    path = request.images.get(flag)
    if not path:
        raise ValueError(f"--{flag}: required by mode {request.mode}.")
    return flag, path, request.keypoints.get(flag)


def _swap(models: Stage1Serving, request: Request, scale: int) -> tuple[np.ndarray, dict]:
    framings = {}
    both = load_images([_image_spec(request, "source"), _image_spec(request, "target")], models.cfg,
                       request.data_dir, framings)
    source, target = ({k: v[i:i + 1] for k, v in both.items()} for i in (0, 1))
    image = apps.swap(models, source, target, request.factors, request.parts or None)
    what = "+".join(request.factors) + (f" ({','.join(request.parts)})" if request.parts else "")
    grid = visualize.image_grid([cells(both["image"], scale) + cells(image, scale)],
                                column_titles=["source", "target", f"{what} swap"])
    arrays = {"source": both["image"][0], "target": both["image"][1], "image": np.asarray(image)[0]}
    if "target" in framings:  # The swap is the target with some of the source's factors.
        arrays["photo"] = paste_back(framings["target"], arrays["image"])
    return grid, arrays


def _transfer(models: Stage1Serving, request: Request, scale: int) -> tuple[np.ndarray, dict]:
    specs = [_image_spec(request, "source")]
    if request.images.get("pose"):
        specs.append(_image_spec(request, "pose"))
    elif request.keypoints.get("pose") is None:
        raise ValueError("transfer: give the target pose as --pose=IMG or --pose_keypoints=KP.")
    framings = {}
    examples = load_images(specs, models.cfg, request.data_dir, framings)
    if len(specs) == 2:
        target_keypoints = examples["keypoints"][1:]
    else:
        # Without an image, keypoints are pixels of the dataset's stored size, as in its CSV.
        data_cfg = models.cfg.data
        text = request.keypoints["pose"].strip()
        if text.lower().endswith(".json"):
            given = keypoints.read_keypoints_json(text, data_cfg.stored_height, data_cfg.stored_width)
        else:
            given = parse_keypoints(text, "pose_keypoints")
        target_keypoints = geometry.scale_keypoints(
            given[None],
            (data_cfg.stored_height, data_cfg.stored_width), (data_cfg.height, data_cfg.width)).numpy()
    source = {k: v[:1] for k, v in examples.items()}
    image = apps.transfer(models, source, target_keypoints)
    row = cells(source["image"], scale) + skeletons(target_keypoints, models.cfg, scale) + cells(image, scale)
    grid = visualize.image_grid([row], column_titles=["source", "pose", "transfer"])
    arrays = {"source": source["image"][0], "target_keypoints": target_keypoints[0], "image": np.asarray(image)[0]}
    if "source" in framings:
        arrays["photo"] = paste_back(framings["source"], arrays["image"])
    return grid, arrays


def _interpolate(models: Stage2Serving, request: Request, scale: int) -> tuple[np.ndarray, dict]:
    methods = apps.INTERPOLATIONS if request.method == "both" else (request.method,)
    real = _real_test_examples(models, request.data_dir, request.n, request.seed) if request.data_dir else None
    rows, labels, arrays = [], [], {}
    for method in methods:
        out = apps.interpolate(models, request.factor, request.n, request.frames, request.seed, method, real)
        arrays[f"{method}_image"], arrays[f"{method}_z"] = np.asarray(out["image"]), out["z"]
        for index, walk in enumerate(np.asarray(out["image"])):
            rows.append(cells(walk, scale))
            labels.append(f"{method} {index}")
    title = [f"t={t:.2f}" for t in np.linspace(0.0, 1.0, request.frames)]
    return visualize.image_grid(rows, row_labels=labels, column_titles=title), arrays


def _invert_interpolate(models: Stage2Serving, request: Request, scale: int) -> tuple[np.ndarray, dict]:
    both = load_images([_image_spec(request, "a"), _image_spec(request, "b")], models.cfg, request.data_dir)
    a, b = ({k: v[i:i + 1] for k, v in both.items()} for i in (0, 1))
    out = apps.invert_interpolate(models, a, b, request.frames, request.invert_steps, request.seed)
    reconstructions = [models.reconstruct(x["image"], x["keypoints"])["image"] for x in (a, b)]
    walk = np.asarray(out["image"])[0]
    row = (cells(a["image"], scale) + cells(reconstructions[0], scale) + cells(walk, scale)
             + cells(reconstructions[1], scale) + cells(b["image"], scale))
    titles = ["A", "G1(A)"] + [f"t={t:.2f}" for t in np.linspace(0.0, 1.0, request.frames)] + ["G1(B)", "B"]
    for key, value in out.items():
        if key.startswith("error_"):
            relative = out[f"relative_{key}"]
            print(f"{key[6:]}: ||Phi(z) - e||^2 = {value[0, 0]:.4g} (A), {value[1, 0]:.4g} (B); "
                  f"relative {relative[0, 0]:.3g}, {relative[1, 0]:.3g}")
    return visualize.image_grid([row], column_titles=titles), {k: np.asarray(v) for k, v in out.items()}


_RUNNERS = {"sample": _sample, "swap": _swap, "transfer": _transfer, "interpolate": _interpolate,
            "invert_interpolate": _invert_interpolate}


# Modes that need stage I only (they run on `--stage1_dir` without a stage-II run).
STAGE1_MODES = ("swap", "transfer")


def load_models(request: Request) -> Stage1Serving:
    """Stage2Serving of `request.stage2_dirs`, or for transfer and swap without them Stage1Serving."""
    if request.stage2_dirs:
        return load_stage2(request.stage2_dirs, request.stage1_dir)
    if request.mode not in STAGE1_MODES or not request.stage1_dir:
        raise ValueError(f"{request.mode}: needs --stage2_dir (one per factor)"
                         + ("; or --stage1_dir alone" if request.mode in STAGE1_MODES else "") + ".")
    return Stage1Serving(*load_stage1(request.stage1_dir))


def run(request: Request, models: Stage1Serving | None = None) -> list[str]:
    """Runs one mode and writes its PNG (and NPZ, and for a photo framed by the estimator
    `<mode>_photo.png`); returns the paths written.

    Args:
      request: Request.
      models: an already loaded Stage2Serving (Stage1Serving for transfer and swap), or None to
        load `request.stage2_dirs` (or `request.stage1_dir` alone for transfer and swap).

    Raises:
      ValueError: for a bad request, naming the flag and the value.
      rundir.RunDirectoryError: for a directory that is not a run.
    """
    if request.mode not in _RUNNERS:
        raise ValueError(f"mode: got {request.mode!r}; expected one of {', '.join(MODES)}.")
    if models is None:
        models = load_models(request)
    scale = picture_scale(models.cfg)
    grid, arrays = _RUNNERS[request.mode](models, request, scale)
    photo = arrays.pop("photo", None)
    os.makedirs(request.out, exist_ok=True)
    written = [os.path.join(request.out, f"{request.mode}.png")]
    visualize.save_png(written[0], grid)
    if photo is not None:
        written.append(os.path.join(request.out, f"{request.mode}_photo.png"))
        visualize.save_png(written[-1], photo)
    if request.save_npz:
        written.append(os.path.join(request.out, f"{request.mode}.npz"))
        np.savez(written[-1], **arrays)
    return written


FLAGS = flags.FLAGS
IMAGE_FLAGS = ("source", "target", "pose", "a", "b")
# The image flags each mode needs (transfer also takes its pose as --pose or --pose_keypoints).
MODE_IMAGES = {"swap": ("source", "target"), "transfer": ("source",), "invert_interpolate": ("a", "b")}


def define_flags() -> None:
    cli.renamed(steps="--frames")
    factors = [f.value for f in configs.Factor]
    cli.define_shared("stage2_dir", note="Transfer and swap: optional, --stage1_dir is enough.")
    cli.define_shared("stage1_dir", note="Default: the one the stage-II runs name; transfer and swap run on it alone.")
    cli.define_shared("out", required=True)
    cli.define_shared("data_dir", note="Real test images, keypoints by file name.")
    # The defaults are Request's, which are configs.GenerateConfig's.
    cli.define_shared("n", default=Request.n, note="Sample: images; interpolate: rows.", lower_bound=1)
    cli.define_shared("seed", default=Request.seed)
    flags.DEFINE_list("factors", list(Request.factors), "sample: factors from noise; swap: factors to swap.")
    flags.register_validator("factors", lambda names: bool(names) and set(names) <= set(factors),
                             message=f"--factors takes a comma-separated subset of {','.join(factors)}")
    flags.DEFINE_list("parts", [], "swap: FG body ROIs to swap (" + ", ".join(geometry.ROI_NAMES) + ").")
    flags.register_validator("parts", lambda names: set(names) <= set(geometry.ROI_NAMES),
                             message=f"--parts takes a comma-separated subset of {','.join(geometry.ROI_NAMES)}")
    cli.define_shared("factor", default=Request.factor, note="interpolate: the one to walk.")
    for name in IMAGE_FLAGS:
        flags.DEFINE_string(name, None, f"Image file or file name ({name}).")
        alone = "; transfer: without --pose, the target pose itself" if name == "pose" else ""
        flags.DEFINE_string(f"{name}_keypoints", None,
                            f"Keypoints of --{name}: \"[y0, ..., y17]:[x0, ..., x17]\" or a .json file{alone}.")
    flags.DEFINE_integer("frames", Request.frames, "Images per interpolation, endpoints included.", lower_bound=2)
    flags.DEFINE_enum("method", Request.method, [*apps.INTERPOLATIONS, "both"], "interpolate: the path in z.")
    flags.DEFINE_integer("invert_steps", Request.invert_steps, "invert_interpolate: gradient steps per inversion.",
                         lower_bound=0)
    flags.DEFINE_bool("save_npz", Request.save_npz, "Also write the raw arrays.")


def main(argv):
    mode = cli.mode(argv, MODES)
    missing = [f"--{name}" for name in MODE_IMAGES.get(mode, ()) if not FLAGS[name].value]
    if mode == "transfer" and not (FLAGS.pose or FLAGS.pose_keypoints):
        missing.append("--pose or --pose_keypoints")
    if not FLAGS.stage2_dir and not (mode in STAGE1_MODES and FLAGS.stage1_dir):
        missing.append("--stage2_dir" + (" (or --stage1_dir alone)" if mode in STAGE1_MODES else ""))
    if missing:
        raise cli.UsageError(f"{mode}: {', '.join(missing)} required.")
    request = Request(
        mode=mode, stage2_dirs=tuple(FLAGS.stage2_dir or ()), out=FLAGS.out, stage1_dir=FLAGS.stage1_dir,
        data_dir=FLAGS.data_dir, n=FLAGS.n, seed=FLAGS.seed, factors=tuple(FLAGS.factors), parts=tuple(FLAGS.parts),
        factor=FLAGS.factor, images={k: FLAGS[k].value for k in IMAGE_FLAGS},
        keypoints={k: FLAGS[f"{k}_keypoints"].value for k in IMAGE_FLAGS}, frames=FLAGS.frames, method=FLAGS.method,
        invert_steps=FLAGS.invert_steps, save_npz=FLAGS.save_npz)
    for path in run(request):
        print(f"Wrote {path}")


if __name__ == "__main__":
    cli.run(main, define_flags)
