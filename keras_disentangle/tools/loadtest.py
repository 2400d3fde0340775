"""A bounded load test of the browser demo and of the SavedModel's `transfer_photo` signature (`make load`).

    python -m keras_disentangle.tools.loadtest --stage1=EXPORT_DIR --gallery=DIR --gallery_keypoints=CSV \
        [--clients=8] [--seconds=60] [--warmup_seconds=10] [--max_growth=0.1]

Two targets, one after the other, each with `--clients` concurrent clients, first for a warm-up (the
first calls trace and allocate), then for `--seconds`:

* app: the browser demo (`keras_disentangle.apps.app`) started as its own process on a free 127.0.0.1
  port; each client is a `gradio_client` calling /transfer with two gallery photos (uploaded files).
* savedmodel: the stage-I SavedModel loaded in this process; each client is a thread calling
  `transfer_photo` with a gallery photo's bytes, its keypoints and another photo's pose.

It prints one table row per target: requests, requests/s, p50 and p95 latency, errors, and the
serving process's resident memory (VmRSS) after the warm-up and at the end. Exit 0 only if no request
failed and no target's memory grew by more than `--max_growth`. Every loop stops at its deadline and
every request has a timeout; nothing but 127.0.0.1 is called.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np
from absl import flags

from keras_disentangle import cli, configs
from keras_disentangle.apps import app



@dataclasses.dataclass(frozen=True)
class LoadConfig:
    """The load: `clients` concurrent clients for `seconds` after `warmup_seconds`; a request slower
    than `timeout_seconds` is an error; the target passes when its memory grows by <= `max_growth`."""

    clients: int = 8
    seconds: float = 60.0
    warmup_seconds: float = 10.0
    timeout_seconds: float = 60.0
    max_growth: float = 0.10
    start_timeout_seconds: float = 300.0


@dataclasses.dataclass(frozen=True)
class Result:
    """One target's measurements: latencies in seconds, the first error's text, RSS in bytes."""

    name: str
    latencies: tuple
    errors: int
    first_error: str
    seconds: float
    rss_warm: int
    rss_end: int

    @property
    def growth(self) -> float:
        return self.rss_end / self.rss_warm - 1.0

    def row(self) -> str:
        p50, p95 = (1000 * np.percentile(self.latencies, q) if self.latencies else float("nan") for q in (50, 95))
        return (f"| {self.name} | {len(self.latencies)} | {len(self.latencies) / self.seconds:.2f} | {p50:.0f} | "
                f"{p95:.0f} | {self.errors} | {self.rss_warm / 2 ** 20:.0f} | {self.rss_end / 2 ** 20:.0f} | "
                f"{100 * self.growth:+.1f} % |")


HEADER = ("| target | requests | requests/s | p50 ms | p95 ms | errors | RSS after warm-up, MiB | RSS at end, MiB "
          "| growth |\n|---|---|---|---|---|---|---|---|---|")


def rss(pid: int | str = "self") -> int:
    """Resident memory of a process in bytes (VmRSS of /proc/PID/status)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"/proc/{pid}/status: no VmRSS line")


def _phase(call, clients: int, seconds: float) -> tuple[list, list]:
    """`clients` threads each calling `call(client_index)` until the deadline: (latencies, error texts)."""
    deadline = time.monotonic() + seconds
    latencies, errors, lock = [], [], threading.Lock()

    def client(index):
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                call(index)
            except Exception as error:  # noqa: BLE001 (any failed request is counted, the load goes on)
                with lock:
                    errors.append(f"{error.__class__.__name__}: {str(error).strip()[:200]}")
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def failures(result: Result, cfg: LoadConfig) -> list[str]:
    """Why `result` fails the targets: any failed request, memory growth over `cfg.max_growth`, no request."""
    failed = []
    if result.errors:
        failed.append(f"{result.name}: {result.errors} errors, the first: {result.first_error}")
    if result.growth > cfg.max_growth:
        failed.append(f"{result.name}: memory grew {100 * result.growth:.1f} % > {100 * cfg.max_growth:.0f} %")
    if not result.latencies:
        failed.append(f"{result.name}: no request completed")
    return failed


def measure(name: str, call, cfg: LoadConfig, memory) -> Result:
    """Warm-up, memory, the measured phase, memory; `memory()` is the serving process's RSS."""
    _phase(call, cfg.clients, cfg.warmup_seconds)
    warm = memory()
    latencies, errors = _phase(call, cfg.clients, cfg.seconds)
    return Result(name, tuple(latencies), len(errors), errors[0] if errors else "", cfg.seconds, warm, memory())


def app_target(cfg: LoadConfig, stage1: str, gallery: str, gallery_keypoints: str | None) -> Result:
    """The browser demo in its own process, `cfg.clients` gradio clients calling /transfer."""
    from gradio_client import handle_file

    port = app.free_port()
    command = [sys.executable, "-m", "keras_disentangle.apps.app", f"--stage1={stage1}", f"--gallery={gallery}",
               "--host=127.0.0.1", f"--port={port}"] + ([f"--gallery_keypoints={gallery_keypoints}"]
                                                         if gallery_keypoints else [])
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        clients = [_connect(url, server, cfg) for _ in range(cfg.clients)]
        photos, _ = app.read_gallery(gallery, gallery_keypoints)
        pairs = [(handle_file(a), handle_file(b)) for a, b in zip(photos, photos[1:] + photos[:1])]
        counter = [0] * cfg.clients

        def call(index):
            counter[index] += 1
            source, target = pairs[(index + counter[index]) % len(pairs)]
            clients[index].submit(source, target, api_name="/transfer").result(timeout=cfg.timeout_seconds)

        return measure("app (HTTP, gradio_client)", call, cfg, lambda: rss(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=60)


def _connect(url: str, server: subprocess.Popen, cfg: LoadConfig):
    """A gradio client of the app at `url`, once it answers (the app loads its models first)."""
    from gradio_client import Client

    deadline = time.monotonic() + cfg.start_timeout_seconds
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with code {server.returncode}: {server.stderr.read()[-2000:]}")
        try:
            return Client(url, verbose=False, httpx_kwargs={"timeout": cfg.timeout_seconds})
        except Exception:  # noqa: BLE001 (not listening yet)
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def savedmodel_target(cfg: LoadConfig, stage1: str, gallery: str, gallery_keypoints: str | None) -> Result:
    """`transfer_photo` of the SavedModel loaded here, called from `cfg.clients` threads."""
    import tensorflow as tf

    photos, points = app.read_gallery(gallery, gallery_keypoints)
    known = [p for p in photos if pathlib.Path(p).name in points]
    if len(known) < 2:
        raise ValueError(f"--gallery_keypoints: need 2 gallery photos with keypoints, found {len(known)}")
    signature = tf.saved_model.load(app.savedmodel_dir(stage1, "stage1")).signatures["transfer_photo"]
    requests = [dict(image_bytes=tf.constant([pathlib.Path(a).read_bytes()]),
                     keypoints=tf.constant([points[pathlib.Path(a).name]], tf.float32),
                     target_keypoints=tf.constant([points[pathlib.Path(b).name]], tf.float32))
                for a, b in zip(known, known[1:] + known[:1])]
    counter = [0] * cfg.clients

    def call(index):
        counter[index] += 1
        signature(**requests[(index + counter[index]) % len(requests)])["png_bytes"].numpy()

    return measure("SavedModel transfer_photo (in process, threads)", call, cfg, rss)


FLAGS = flags.FLAGS


class Targets(configs.StrEnum):
    BOTH = "both"
    APP = "app"
    SAVEDMODEL = "savedmodel"


def define_flags() -> None:
    defaults = LoadConfig()
    cli.define_shared("stage1", required=True)
    cli.define_shared("gallery", note="The clients send them.", required=True)
    cli.define_shared("gallery_keypoints", note="The SavedModel target needs keypoints for two of them.")
    flags.DEFINE_integer("clients", defaults.clients, "Concurrent clients.", lower_bound=1)
    flags.DEFINE_float("seconds", defaults.seconds, "Measured seconds per target.", lower_bound=0.1)
    flags.DEFINE_float("warmup_seconds", defaults.warmup_seconds, "Warm-up seconds per target.", lower_bound=0.0)
    flags.DEFINE_float("max_growth", defaults.max_growth, "Largest accepted growth of resident memory.")
    cli.define_enum("targets", Targets.BOTH, Targets, "What to load.")


def main(argv):
    cli.no_positional(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per HTTP request otherwise
    cfg = LoadConfig(clients=FLAGS.clients, seconds=FLAGS.seconds, warmup_seconds=FLAGS.warmup_seconds,
                     max_growth=FLAGS.max_growth)
    app.savedmodel_dir(FLAGS.stage1, "stage1")
    targets = {Targets.APP: app_target, Targets.SAVEDMODEL: savedmodel_target}
    chosen = list(targets) if FLAGS.targets == Targets.BOTH else [FLAGS.targets]
    print(f"{cfg.clients} clients, {cfg.warmup_seconds:g} s warm-up, {cfg.seconds:g} s measured per target")
    print(HEADER, flush=True)
    failed = []
    for name in chosen:
        result = targets[name](cfg, FLAGS.stage1, FLAGS.gallery, FLAGS.gallery_keypoints)
        print(result.row(), flush=True)
        failed += failures(result, cfg)
    for line in failed:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main, define_flags)
