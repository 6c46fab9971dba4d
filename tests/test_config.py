"""Typed configs: the shipped files load, and every bad value is one line naming file and key."""

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from uwav.cli import main
from uwav.config import Config, field_kind, flat_dict, load_config, with_overrides
from uwav.errors import UwavError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["demo.yaml", "llp.yaml", "llp_clipclap.yaml"])
def test_shipped_configs_load(name):
    config = load_config(ROOT / "configs" / name)
    assert isinstance(config, Config)


def test_llp_config_holds_the_paper_and_code_defaults():
    c = load_config(ROOT / "configs" / "llp.yaml")
    assert (c.parser.layers, c.parser.heads, c.parser.ff, c.parser.d_model) == (5, 16, 2048, 512)
    assert (c.loss.W, c.loss.alpha, c.pseudo.temperature, c.loss.reweight_scale) == (0.5, 1.7, 2.0, "code")
    assert (c.train.epochs, c.train.batch_size, c.train.lr_max, c.train.lr_min) == (80, 64, 1e-4, 5e-6)
    assert (c.pretrain.grad_clip, c.pretrain.pos_weight, c.pretrain.beta1) == (2.0, 5.0, 0.5)
    assert (c.pseudo.threshold_fit, c.pseudo.threshold_cuts) == ("f1", "code")  # the official θ fit


def test_llp_clipclap_config_is_llp_with_the_official_clip_clap_han():
    """Table A6 †: the code feeds CLIP (768) to the HAN unprojected, so d = 768; all else as llp.yaml."""
    base, variant = flat_dict(load_config(ROOT / "configs" / "llp.yaml")), flat_dict(
        load_config(ROOT / "configs" / "llp_clipclap.yaml"))
    changed = {k: variant[k] for k in base if base[k] != variant[k]}
    assert changed == {"paths.features": "data/llp/uwav", "paths.layout": "uwav", "paths.generator_features": "",
                       "paths.out": "runs/llp_clipclap", "parser.d_model": 768, "parser.visual_projection": "none"}
    assert base["generator.normalize_text"] is False and base["pretrain.bucket_by_length"] is True


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("loss: {W: -1}", "loss.W must be > 0"),
        ("loss: {Wx: 1}", "unknown key 'loss.Wx'"),
        ("train: {epochs: 2.5}", "train.epochs must be an integer"),
        ("train: {precision: fp16}", "train.precision must be one of fp32, bf16, bf16_force, auto"),
        ("loss: {mixup: yes please}", "loss.mixup must be true or false"),
        ("pseudo: {temperature: 0}", "pseudo.temperature must be > 0"),
        ("pseudo: {threshold_cuts: all}", "pseudo.threshold_cuts must be one of code, finite, realisable"),
        ("train: {lr_max: 1.0e-4, lr_min: 1.0e-3}", "train.lr_min (0.001) must not exceed"),
        ("parser: {d_model: 100, heads: 16}", "parser.heads (16) must divide the width (100)"),
        ("paths: 3", "paths must be a mapping"),
        ("parser: {visual_projection: none, d_model: 768}", "parser.visual_projection 'none' needs paths.layout uwav"),
        ("paths: {layout: uwav}\nparser: {visual_projection: none}", "parser.d_model must be 768; found 512"),
        ("parser: {visual_projection: conv}", "parser.visual_projection must be one of linear, none"),
        ("loss: {W: [1, 2]}", "loss.W must be a number"),
        ("train: {epochs: 3\n  bad", "invalid YAML"),
    ],
)
def test_bad_values_are_one_line_errors_naming_file_and_key(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(UwavError) as err:
        load_config(path)
    message = str(err.value)
    assert fragment in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_file():
    with pytest.raises(UwavError, match="config file not found"):
        load_config("/nonexistent/config.yaml")


def test_overrides_are_validated_and_flattened():
    base = Config()
    c = with_overrides(base, {"loss.W": 0.25, "pseudo.offset_audio": -1.5, "train.epochs": 3,
                             "train.warmup_epochs": 1})
    flat = flat_dict(c)
    assert flat["loss.W"] == 0.25 and flat["pseudo.offset_audio"] == -1.5 and flat["train.epochs"] == 3
    assert base.loss.W == 0.5  # frozen: the base is untouched
    with pytest.raises(UwavError, match="loss.alpha must be a number"):
        with_overrides(base, {"loss.alpha": "high"})
    with pytest.raises(UwavError, match="unknown key 'loss.nope'"):
        with_overrides(base, {"loss.nope": 1})


def test_field_kind_knows_types_and_rejects_unknown_keys():
    tp, f = field_kind("loss.segment_target")
    assert tp is str and f.metadata["choices"] == ("soft", "hard")
    assert field_kind("train.epochs")[0] is int
    with pytest.raises(UwavError):
        field_kind("loss")
    with pytest.raises(UwavError):
        field_kind("loss.W.x")


def test_cli_reports_config_error_in_one_line_with_exit_code_2(tmp_path):
    path = _write(tmp_path, "loss: {reweight_scale: huge}")
    result = CliRunner().invoke(main, ["train", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "loss.reweight_scale must be one of code, paper" in result.output
    result = CliRunner().invoke(main, ["train", str(path), "--set", "novalue"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_config_command_lists_keys_and_resolves_files(tmp_path):
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 0 and "pseudo.temperature = 2.0" in result.output and "paper 1" in result.output
    path = _write(tmp_path, "loss: {W: 0.25}")
    result = CliRunner().invoke(main, ["config", str(path), "--set", "train.epochs=12"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["loss"]["W"] == 0.25 and resolved["train"]["epochs"] == 12 and resolved["parser"]["layers"] == 5
    result = CliRunner().invoke(main, ["config", str(path), "--set", "train.epochs=0"])
    assert result.exit_code == 2 and "train.epochs must be >= 1" in result.output
