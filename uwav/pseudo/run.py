"""`uwav pseudo` (stage 2): the logits cache, θ fitted on val once, and the pseudo-label quality report.

Writes <out>/pseudo/ (layout documented in uwav.data.logits): logits.npz (once per generator
checkpoint), θ of both threshold modes as `{a,v}_{mode}_thresholds.npy` with thresholds.json, and
quality.json: the quality of the generator's hard labels and of the VALOR-style zero-shot baseline
(thresholded text similarity of the raw features, no temporal model) on val, test and, where the dataset
ships dense train labels (synthetic), train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uwav.data.dataset import annotation_files, load_annotations
from uwav.data.features import load_uwav_segments
from uwav.data.logits import THRESHOLDS_META, logits_for_split, open_logits, threshold_file
from uwav.errors import UwavError
from uwav.io import save_npy, write_json
from uwav.metrics import ave_accuracy, ave_segment_labels
from uwav.provenance import NOT_LLP, audio_gt_identity
from uwav.pseudo.generate import SPLITS, cache_is_current, generate_logits, generator_features_root, text_embeddings
from uwav.pseudo.quality import CLAP_ZERO_SHOT_SCALE, CLIP_ZERO_SHOT_SCALE, pseudo_quality, zero_shot_scores
from uwav.pseudo.targets import hard_labels
from uwav.pseudo.thresholds import VALOR_THRESHOLDS_CLAP, VALOR_THRESHOLDS_CLIP, fit_all_thresholds


def write_thresholds(pseudo_dir: Path, thresholds: dict[str, dict[str, np.ndarray]], fit: str, cuts: str,
                     generator_sha256: str, val_files: str) -> None:
    """The θ artefact training reads back (uwav.data.logits.read_thresholds)."""
    for mode, per_modality in thresholds.items():
        for modality, theta in per_modality.items():
            save_npy(threshold_file(pseudo_dir, mode, modality), np.asarray(theta, dtype=np.float32))
    write_json(pseudo_dir / THRESHOLDS_META, {"threshold_fit": fit, "threshold_cuts": cuts,
                                              "modes": list(thresholds),
                                              "generator_sha256": generator_sha256, "fitted_on": "val",
                                              "val_dense_gt": val_files})


def run_pseudo(config, force: bool = False, progress: bool = True) -> dict:
    """Cache logits (once per checkpoint), fit θ on val, write the θ artefact and the quality report."""
    regenerated = False
    if force or not cache_is_current(config):
        generate_logits(config, progress=progress)
        regenerated = True
    cache = open_logits(config.logits_file)
    root = generator_features_root(config)
    text_visual, text_audio = text_embeddings(config)
    mode, fit, cuts = config.pseudo.threshold_mode, config.pseudo.threshold_fit, config.pseudo.threshold_cuts
    ann, logits, zero_shot = {}, {}, {}
    for split in SPLITS:
        ann[split] = load_annotations(config, split)
        logits[split] = logits_for_split(cache, split, tuple(ann[split].filenames))
        feats = load_uwav_segments(root, list(ann[split].ids))
        zero_shot[split] = (zero_shot_scores(feats["clap"], text_audio, CLAP_ZERO_SHOT_SCALE),
                            zero_shot_scores(feats["clip"], text_visual, CLIP_ZERO_SHOT_SCALE))
    val = ann["val"]
    if val.gt_audio is None or val.gt_visual is None:
        raise UwavError("val split has no dense labels; θ fitting and model selection need them")
    generator_theta = fit_all_thresholds(*logits["val"], val.weak, val.gt_audio, val.gt_visual, fit, cuts)
    theta = {"generator": (generator_theta[mode]["audio"], generator_theta[mode]["visual"])}
    if config.pseudo.zero_shot_thresholds == "valor":
        if config.dataset != "llp":
            raise UwavError("config: pseudo.zero_shot_thresholds = valor only exists for LLP's 25 classes")
        theta["zero_shot"] = (VALOR_THRESHOLDS_CLAP, VALOR_THRESHOLDS_CLIP)
    else:
        zs = fit_all_thresholds(*zero_shot["val"], val.weak, val.gt_audio, val.gt_visual, fit,
                                cuts)[mode]
        theta["zero_shot"] = (zs["audio"], zs["visual"])
    rows = []
    for source, per_split in (("generator", logits), ("zero_shot", zero_shot)):
        for split in SPLITS:
            a = ann[split]
            if a.gt_audio is None or a.gt_visual is None:
                continue  # real LLP train has no dense labels
            scores = pseudo_quality(*per_split[split], *theta[source], a.weak, a.gt_audio, a.gt_visual)
            if config.dataset == "ave":
                # Hard labels are weak-gated 0/1, so the §12 rule labels a segment with the video's class
                # exactly where both modalities' pseudo labels are on.
                hard = [hard_labels(z, th, a.weak) for z, th in zip(per_split[split], theta[source], strict=True)]
                scores = {"accuracy": ave_accuracy(ave_segment_labels(*hard, a.weak), a.segment_labels), **scores}
            rows.append({"labels": source, "split": split, **scores})
    pseudo_dir = Path(config.logits_file).parent
    write_thresholds(pseudo_dir, generator_theta, fit, cuts, cache.get("generator_sha256"), annotation_files(config))
    report = {
        "generator_checkpoint": str(config.generator_checkpoint),
        "generator_sha256": cache.get("generator_sha256"),
        "dataset": config.dataset,
        "class_order": config.ave_class_order if config.dataset == "ave" else None,
        "threshold_mode": mode,
        "threshold_fit": fit,
        "threshold_cuts": cuts,
        "zero_shot_thresholds": config.pseudo.zero_shot_thresholds,
        "audio_gt_file": annotation_files(config),
        # θ is fitted on val, which both published audio GT files score alike; recorded all the same.
        "audio_gt": audio_gt_identity(annotation_files(config)) if config.dataset == "llp" else dict(NOT_LLP),
        "thresholds": {src: {"audio": [float(x) for x in th[0]], "visual": [float(x) for x in th[1]]}
                       for src, th in theta.items()},
        "infinite_thresholds": {"audio": int(np.isneginf(theta["generator"][0]).sum()),
                                "visual": int(np.isneginf(theta["generator"][1]).sum())},
        "rows": rows,
        "regenerated_logits": regenerated,
    }
    write_json(pseudo_dir / "quality.json", report)
    return report
