"""`make identity`: the bit-identity record of a pure refactor (issue 27) and its comparison.

    python tests/bit_identity.py record --out=FILE.json [--repo=DIR]   # DIR: the checkout to run (default: this one)
    python tests/bit_identity.py compare A.json B.json

`record` trains every trainer for 20 seeded float32 steps through the commands users run, from the
checkout DIR (`train.py --stage=1|2|baseline`, `python -m keras_disentangle.reid.train`), exports the
stage-I and stage-II runs with `python -m keras_disentangle.export` (the old path, which every revision
runs: since the package's layout moved, a shim of `keras_disentangle.serving.export`), and writes one
entry per artefact:

- `<run>/ckpt/<key>`: sha256 of the bytes, dtype and shape of each variable of the run's last checkpoint,
  by its checkpoint key (the keys are the resume contract; the object graph's own proto is left out);
- `<run>/loss/<tag>/<step>`: each logged TensorBoard scalar's float32 bits (timings left out); the re-ID
  trainer logs its loss as text, so its entries are its printed lines;
- `export/<signature>/<output>`: sha256 of each SavedModel signature's output on fixed seeded inputs.

Only the commands, their flags, the checkpoint keys, the event files and the SavedModel are read: the
record imports nothing of the package, so it holds across a refactor that moves every module. Float32
bits differ between CPU kinds and TensorFlow builds, so two records compare only from one machine and
one environment; `info` (CPU flags, TensorFlow version) says where a record was made.

`compare` exits 0 with `bit-identical: N entries`, or 1 with one line per entry that differs or is
missing on one side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 20
SEED = 1
# The synthetic set of tests/conftest.py's `synthetic_root` (8 identities x 4 images, 3 cameras, seed 3).
DATA = ("--ids=8", "--images_per_id=4", "--cameras=3", "--seed=3")
COMMON = ("--dataset=synthetic", "--scale=micro", f"--steps={STEPS}", "--log_every=1", "--image_every=1000",
          "--precision=float32", f"--seed={SEED}")
# Stage I with D1 on (the micro preset is L1 only), so both of G1's and D1's updates are recorded, before
# and after the warm-up.
STAGE1 = ("--batch_size=4", "--adversarial_weight=0.1", "--adversarial_start_step=5")
FACTORS = ("fg", "bg", "pose")
BASELINES = ("vae", "dcgan")
# Tags whose values are wall-clock measurements, not numbers the code computes.
UNTIMED = re.compile(r"^time/")
BATCH = 2


def sha256(array: np.ndarray) -> str:
    array = np.asarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    if array.dtype.kind in "OSU":  # strings (PNG bytes): their bytes, one after the other
        for item in array.reshape(-1):
            digest.update(item if isinstance(item, bytes) else str(item).encode())
    else:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def float32_bits(value) -> str:
    value = np.asarray(value, np.float32).reshape(())
    return f"{value.tobytes()[::-1].hex()} ({np.format_float_positional(value[()])})"


def checkpoint_entries(prefix: str, run: str) -> dict[str, str]:
    """One entry per variable of the checkpoint `prefix`, by key."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {f"{run}/ckpt/{key}": sha256(reader.get_tensor(key))
            for key in sorted(reader.get_variable_to_shape_map()) if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def latest_checkpoint(logdir: pathlib.Path) -> str:
    """The newest checkpoint of the one checkpoint directory under the run directory `logdir`."""
    import tensorflow as tf

    found = [tf.train.latest_checkpoint(str(d)) for d in sorted({p.parent for p in logdir.rglob("checkpoint")})]
    if len(found) != 1 or not found[0]:
        raise RuntimeError(f"{logdir}: expected one checkpoint directory with a checkpoint, found {found}")
    return found[0]


def loss_entries(logdir: pathlib.Path, run: str) -> dict[str, str]:
    """One entry per logged scalar and step in the TensorBoard event files under `logdir`."""
    import tensorflow as tf

    entries = {}
    for events in sorted(logdir.rglob("events.out.tfevents.*")):
        for event in map(tf.compat.v1.Event.FromString, tf.data.TFRecordDataset(str(events)).as_numpy_iterator()):
            for value in event.summary.value:
                if UNTIMED.match(value.tag) or value.metadata.plugin_data.plugin_name != "scalars":
                    continue
                key = f"{run}/loss/{value.tag}/{event.step}"
                if key in entries:
                    raise RuntimeError(f"{events}: {value.tag} logged twice at step {event.step}")
                entries[key] = float32_bits(tf.make_ndarray(value.tensor))
    if not entries:
        raise RuntimeError(f"{logdir}: no logged scalars")
    return entries


def signature_inputs(signature, height: int, width: int, rng: np.random.Generator) -> dict:
    """Fixed inputs for one signature, made from its input specs: images in [-1, 1] at the model's size,
    keypoints inside it (a few missing), a PNG photo twice the model's size, codes ~ N(0, 1), n = 2, seed = 7."""
    import tensorflow as tf

    inputs = {}
    for name, spec in sorted(signature.structured_input_signature[1].items()):
        if spec.dtype == tf.string:
            pixels = rng.integers(0, 256, (2 * height, 2 * width, 3), dtype=np.uint8)
            photo = tf.io.encode_png(pixels).numpy()
            inputs[name] = tf.constant([photo] * BATCH if spec.shape.rank else photo)
            continue
        if spec.dtype.is_integer:
            inputs[name] = tf.constant(7 if name == "seed" else BATCH, spec.dtype, shape=[BATCH] * spec.shape.rank)
            continue
        shape = [d if d is not None else BATCH for d in spec.shape.as_list()]
        if "keypoints" in name:
            values = np.stack([rng.uniform(0, height, shape[:-1]), rng.uniform(0, width, shape[:-1])], -1)
            values[rng.random(shape[:-1]) < 0.15] = -1
        elif spec.shape.rank == 4:
            shape[1:3] = [height, width] if spec.shape[1] is None else shape[1:3]
            values = rng.uniform(-1, 1, shape)
        else:
            values = rng.standard_normal(shape)
        inputs[name] = tf.constant(values, spec.dtype)
    return inputs


def export_entries(saved_model: pathlib.Path) -> dict[str, str]:
    """One entry per output of every signature of `saved_model`, each on its own seeded inputs."""
    import tensorflow as tf

    model = tf.saved_model.load(str(saved_model))
    info = model.signatures["model_info"]()
    height, width = int(info["height"]), int(info["width"])
    entries = {}
    for name in sorted(model.signatures):
        signature = model.signatures[name]
        inputs = signature_inputs(signature, height, width, np.random.default_rng(list(name.encode())))
        for output, value in sorted(signature(**inputs).items()):
            entries[f"export/{name}/{output}"] = sha256(value.numpy())
    return entries


def _run(repo: pathlib.Path, *args: str) -> str:
    command = [sys.executable, *args]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} (in {repo}) exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def cpu_info() -> dict:
    import tensorflow as tf

    flags = set(re.findall(r"\b(avx512_bf16|amx_bf16|avx2|avx512f)\b", pathlib.Path("/proc/cpuinfo").read_text()))
    return {"cpu_flags": sorted(flags), "tensorflow": tf.__version__, "python": sys.version.split()[0],
            "nproc": os.cpu_count(), "env": {k: v for k, v in os.environ.items()
                                             if k.startswith(("ONEDNN", "TF_", "OMP_", "KMP_"))}}


def record(repo: pathlib.Path, work: pathlib.Path, log=print) -> dict:
    """Runs every trainer and the export from the checkout `repo` in `work`; returns the record."""
    entries: dict[str, str] = {}
    records, runs = work / "records", work / "runs"
    _run(repo, "-m", "tfrecords.synthetic", f"--out={work / 'synthetic'}", *DATA)
    _run(repo, "-m", "tfrecords.build", "--dataset=synthetic", f"--root={work / 'synthetic'}", f"--out={records}")
    data = f"--data_dir={records}"
    trainers = {"stage1": ("train.py", "--stage=1", data, *COMMON, *STAGE1)}
    trainers.update({f"stage2-{f}": ("train.py", "--stage=2", f"--factor={f}", f"--stage1_dir={runs / 'stage1'}",
                                     data, *COMMON, "--mapper_batch_size=4") for f in FACTORS})
    trainers.update({b: ("train.py", "--stage=baseline", f"--model={b}", data, *COMMON, "--batch_size=4")
                     for b in BASELINES})
    for run, args in trainers.items():
        log(f"record: {run}")
        _run(repo, *args, f"--logdir={runs / run}")
        entries.update(checkpoint_entries(latest_checkpoint(runs / run), run))
        entries.update(loss_entries(runs / run, run))
    log("record: reid")
    printed = _run(repo, "-m", "keras_disentangle.reid.train", data, f"--logdir={runs / 'reid'}", "--preset=small",
                   f"--steps={STEPS}", "--batch_ids=4", "--images_per_id=2", f"--seed={SEED}")
    entries.update(checkpoint_entries(latest_checkpoint(runs / "reid"), "reid"))
    losses = re.findall(r"step (\d+)/\d+ \| (loss \S+)", printed)
    if not losses:
        raise RuntimeError(f"the re-ID trainer printed no loss: {printed[-500:]}")
    entries.update({f"reid/loss/printed/{step}": text for step, text in losses})
    log("record: export")
    _run(repo, "-m", "keras_disentangle.export", f"--stage1_dir={runs / 'stage1'}",
         *(f"--stage2_dir={runs / f'stage2-{f}'}" for f in FACTORS), f"--out={work / 'export'}", "--name=dpig",
         "--version=1", "--precision=float32")
    entries.update(export_entries(work / "export" / "dpig" / "1"))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    return {"info": {**cpu_info(), "repo": str(repo), "commit": commit, "steps": STEPS, "seed": SEED},
            "entries": entries}


def differences(a: dict, b: dict) -> list[str]:
    """One line per entry that differs between the records `a` and `b` or is in one of them only."""
    lines = []
    for key in sorted(set(a["entries"]) | set(b["entries"])):
        left, right = a["entries"].get(key), b["entries"].get(key)
        if left != right:
            lines.append(f"{key}: {left or 'missing'} != {right or 'missing'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bit_identity.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("record", help="train, export and record one checkout")
    make.add_argument("--out", required=True, type=pathlib.Path)
    make.add_argument("--repo", default=REPO_ROOT, type=pathlib.Path, help="the checkout whose commands run")
    check = commands.add_parser("compare", help="compare two records")
    check.add_argument("records", nargs=2, type=pathlib.Path)
    args = parser.parse_args(argv)
    if args.command == "record":
        if not (args.repo / "train.py").is_file():
            parser.error(f"--repo={args.repo}: no train.py there")
        with tempfile.TemporaryDirectory(prefix="bit_identity-") as work:
            result = record(args.repo.resolve(), pathlib.Path(work))
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(result['entries'])} entries of {args.repo} in {args.out}")
        return 0
    loaded = []
    for path in args.records:
        try:
            loaded.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            parser.error(f"{path}: not a record ({error})")
        if not isinstance(loaded[-1], dict) or not isinstance(loaded[-1].get("entries"), dict):
            parser.error(f"{path}: not a record (no 'entries' object)")
    lines = differences(*loaded)
    for line in lines:
        print(line)
    if lines:
        print(f"differ: {len(lines)} of {len(set(loaded[0]['entries']) | set(loaded[1]['entries']))} entries")
        return 1
    print(f"bit-identical: {len(loaded[0]['entries'])} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
