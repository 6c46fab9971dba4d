"""Shared by benchmarks: a small synthetic set, a small pre-trained generator and its cached logits."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uwav.config import config_from_dict, to_dict  # noqa: E402
from uwav.data.dataset import load_parser_data  # noqa: E402
from uwav.pretrain import pretrain  # noqa: E402
from uwav.pseudo.run import run_pseudo  # noqa: E402


def prepare(data_dir: Path, work: Path, base_config, include_test: bool = False):
    """Write (if missing) the synthetic small set, pre-train the base config's generator, cache its logits.

    Returns (config pointing at them, ParserData). The parser reads CLIP/CLAP features (uwav layout).
    """
    if not (data_dir / "llp").is_dir():
        from uwav.data.synthetic import generate

        # World version 1: the numbers bench/README.md reports for these benchmarks were measured on it.
        generate(data_dir, size="small", seed=0, layouts=("uwav",), world_version=1)
    llp = data_dir / "llp"
    raw = to_dict(base_config)
    raw["paths"].update(annotations=str(llp / "annotations"), features=str(llp), layout="uwav",
                        generator_features=str(llp), unav_features=str(data_dir / "unav"),
                        unav_annotations=str(data_dir / "unav" / "unav100_annotations.json"), out=str(work))
    config = config_from_dict(raw, "benchmark")
    pretrain(config, progress=False)
    run_pseudo(config, progress=False)
    return config, load_parser_data(config, include_test=include_test)
