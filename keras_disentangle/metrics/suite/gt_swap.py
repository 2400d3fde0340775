"""gt_swap: FG / BG swaps and pose transfer against the synthetic set's exact ground truth
(`metrics.disentangle.gt_swap`), with the pose auto-encoder check, and the sampled-factor checks when
stage-II runs with FG (and BG) mappers are given."""

from __future__ import annotations

import itertools

from keras_disentangle.metrics.metric import Inputs, Metric, Needs


def compute(inputs: Inputs) -> dict:
    import tensorflow as tf  # noqa: PLC0415

    from keras_disentangle import configs, data  # noqa: PLC0415
    from keras_disentangle.data import geometry  # noqa: PLC0415
    from keras_disentangle.metrics import disentangle, report  # noqa: PLC0415
    from keras_disentangle.serving.runtime import Stage1Serving  # noqa: PLC0415

    options, cfg, stage1, stage2 = inputs.options, inputs.cfg, inputs.stage1, inputs.stage2
    serving = stage2 or Stage1Serving(cfg, stage1)
    # Pairs are drawn among up to 4n images so that most images appear in a few pairs at most.
    examples = data.load_examples(inputs.data_dir, cfg, options.split, 4 * options.n)

    def encode(batch):
        codes = serving.encode(tf.constant(batch["image"]), tf.constant(batch["keypoints"]))
        return {"fg": codes["fg"], "bg": codes.get("bg")}

    def decode_pose(pose_vectors):
        decoded = stage1.pose_decoder(stage1.pose_encoder(pose_vectors, training=False), training=False)
        return geometry.heatmaps_from_pose_vector(decoded, cfg.data.height, cfg.data.width, cfg.data.heatmap_radius)

    def generate(codes, heatmaps):
        bg = None if codes["bg"] is None else tf.convert_to_tensor(codes["bg"])
        return serving.generate(tf.convert_to_tensor(codes["fg"]), bg, tf.convert_to_tensor(heatmaps))

    if stage2 is not None and configs.Factor.FOREGROUND in stage2.mappers:
        draws = itertools.count(options.seed)

        def sample(factor, count):
            return stage2.sample_embedding(factor, count, next(draws))
    else:
        sample = None

    steps = range(0, options.n, options.batch_size)
    result = disentangle.gt_swap(
        examples, generate, encode, cfg.data,
        n=options.n, seed=options.seed, batch_size=options.batch_size, progress=report.progress_bar(len(steps)),
        decode_pose=decode_pose, sample=sample)
    result["value"] = None
    result["protocol"] = (
        f"'{options.split}' split, pairs with different identity"
        f"{' and background' if cfg.data.has_background else ''}, seed {options.seed}; SSIM: "
        "gaussian protocol on colour; L1 in [0, 1] units; region = the pose's body mask (fg_swap, pose_transfer), "
        "its complement (bg_swap), the whole image (reconstruction); colour: per garment, the pixels its colour sets "
        "for at least half, CIELAB of their mean RGB in output and target, CIE76 distance and chroma ratio (ratio of "
        "means); pose_transfer_embedded decodes the pose "
        "through the pose auto-encoder; sampled_fg/bg (stage II) score region L1 where the sampled factor must "
        "not change the image, next to the reconstruction's")
    return result


def table(result: dict) -> list[str]:
    from keras_disentangle.metrics.report import number  # noqa: PLC0415

    lines = [f"\ngt_swap on {result['n']} pairs (lower L1 is better, higher SSIM is better)",
             f"{'task':<24}{'output':<16}{'SSIM':>8}{'L1':>8}{'region L1':>11}"]
    for task, by_output in result["tasks"].items():
        for output, m in by_output.items():
            lines.append(f"{task:<24}{output:<16}" + "".join(
                f"{number(m[k]['mean'] if k in m else None):>{w}}"
                for k, w in (("ssim", 8), ("l1", 8), ("region_l1", 11))))
    lines += ["\ngt_swap colour per garment (mean-colour dE76: lower is better; chroma ratio output / target: 1 is "
              "exact, 0 is grey)",
              f"{'task':<24}{'garment':<9}{'output':<16}{'dE76':>7}{'chroma':>8}{'pairs':>7}"]
    for task, by_garment in result.get("colour", {}).items():
        for garment, by_output in by_garment.items():
            for output, m in by_output.items():
                lines.append(f"{task:<24}{garment:<9}{output:<16}{number(m['delta_e'], 1):>7}"
                             f"{number(m['chroma_ratio']):>8}{m['n']:>7}")
    return lines


METRIC = Metric(
    name="gt_swap", help="swaps and pose transfer against the synthetic set's exact ground truth",
    needs=(Needs.STAGE1,), compute=compute, table=table)
