"""`fit`: the one training loop for the HAN parser. `uwav train`, every sweep trial and `--best` call it.

The loop keeps every split as in-memory tensors (no per-item Dataset, no loader workers: the whole
LLP feature set fits in RAM and indexing a tensor is far cheaper than collating 64 numpy files), builds
the pseudo labels of each batch from cached generator logits (method.md §5), applies the three UWAV
losses (§6-§8), steps AdamW with the per-epoch warm-up + cosine schedule (§9.4) and evaluates val after
every epoch with the vectorised protocol metrics. Side effects (checkpoints, MLflow, Ray) are the
caller's: `on_epoch` receives each epoch's report and the trainer, whose `state_dict()` resumes it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from uwav import losses, metrics
from uwav.allocator import keep_freed_memory
from uwav.checkpoints import load_weights
from uwav.data.dataset import ParserData, SplitArrays
from uwav.errors import UwavError
from uwav.hardware import resolve_precision
from uwav.models.han import HAN
from uwav.pseudo.targets import batch_targets, prepare_targets
from uwav.runtime import epoch_lr, resolve_device, seed_everything, send, tensor


def objective_name(config) -> str:
    """The val metric that selects checkpoints and drives sweeps for the config's dataset."""
    return metrics.OBJECTIVES[config.dataset]


def training_precision(config, device: torch.device | None = None, where: str = "train.precision") -> str:
    """`train.precision` resolved for the device the run trains on: "fp32" or "bf16".

    Raises UwavError for bf16 where it would be the slow path (uwav.hardware). Callers that load data
    first call it before loading, so the refusal comes before any heavy work; the Trainer calls it again
    (cheap) so that nothing trains unchecked.
    """
    device = device if device is not None else resolve_device(config.train.device)
    return resolve_precision(config.train.precision, device, where)


def layer_impl(config, device: torch.device) -> str:
    """`parser.layer_impl` resolved for `device`: auto = the CPU-tuned layer on CPU, the plain one elsewhere."""
    impl = config.parser.layer_impl
    return ("fast" if device.type == "cpu" else "plain") if impl == "auto" else impl


def build_parser(config, data: ParserData, device: torch.device) -> HAN:
    """The HAN of the config's `parser:` section, sized for the data's inputs and classes."""
    train = data.split("train")
    return HAN(config.parser, audio_dim=train.audio.shape[-1], visual_dim=train.visual.shape[-1],
               num_classes=data.num_classes, layer_impl=layer_impl(config, device))


@dataclass
class EpochReport:
    epoch: int
    lr: float
    seconds: float
    losses: dict[str, float]
    val: dict[str, float]
    objective: float
    best_objective: float
    best_epoch: int
    improved: bool

    def metrics(self) -> dict[str, float]:
        """Flat numbers for trackers: val_* metrics, loss_* values, the objective and its best so far."""
        out = {f"val_{k}": v for k, v in self.val.items()}
        out.update({f"loss_{k}": v for k, v in self.losses.items()})
        out.update(epoch=self.epoch, lr=self.lr, epoch_seconds=self.seconds, objective=self.objective,
                   best_objective=self.best_objective, best_epoch=self.best_epoch)
        return out


@dataclass
class FitResult:
    best_epoch: int
    best_objective: float
    best_val: dict[str, float]
    history: list[EpochReport] = field(default_factory=list)
    model: HAN | None = None  # with the best epoch's weights when fit(keep_best=True)
    precision: str = "fp32"  # what training ran in ("fp32" or "bf16"), `train.precision` resolved


@torch.inference_mode()
def predict(model: HAN, split: SplitArrays, device: torch.device, batch_size: int = 256,
            precision: str = "fp32") -> dict[str, np.ndarray]:
    """Probabilities for a whole split: audio/visual [N, T, C] (sigmoid) and video [N, C] (MMIL, (0, 2)).

    `precision` is a resolved one, "fp32" or "bf16" (`training_precision`).
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"predict takes a resolved precision (fp32 or bf16), not {precision!r}")
    was_training = model.training
    model.eval()
    outs = {"audio": [], "visual": [], "video": []}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for start in range(0, len(split), batch_size):
            a = tensor(split.audio[start:start + batch_size], device)
            v = tensor(split.visual[start:start + batch_size], device)
            out = model(a, v)
            outs["audio"].append(torch.sigmoid(out.seg_logits_a).float().cpu())
            outs["visual"].append(torch.sigmoid(out.seg_logits_v).float().cpu())
            outs["video"].append(out.video_prob.float().cpu())
    model.train(was_training)
    return {k: torch.cat(v).numpy().astype(np.float64) for k, v in outs.items()}


def evaluate_split(model: HAN, split: SplitArrays, device: torch.device, config,
                   precision: str | None = None) -> dict[str, float]:
    """Val/test scores: LLP the ten F-scores; AVE `metrics.AVE_METRIC_NAMES` (accuracy + the ten).

    Inference runs in `precision` ("fp32" / "bf16"), by default the config's `train.precision` resolved.
    """
    if split.gt_audio is None or split.gt_visual is None:
        raise UwavError(f"split {split.name!r} has no dense labels to evaluate against")
    precision = precision or training_precision(config, device)
    probs = predict(model, split, device, config.train.eval_batch_size, precision)
    if config.dataset == "ave":
        # AVE events are audio-visual: gt_audio and gt_visual are the same event mask.
        return metrics.evaluate_ave(probs["audio"], probs["visual"], probs["video"], split.gt_audio,
                                    tie_rule=config.eval.tie_rule)
    return metrics.evaluate_probabilities(probs["audio"], probs["visual"], probs["video"], split.gt_audio,
                                          split.gt_visual, tie_rule=config.eval.tie_rule)


class Trainer:
    """State of one parser training run; `fit` drives it. Exposed to `on_epoch` for checkpoints."""

    def __init__(self, config, data: ParserData, device: torch.device, keep_best: bool = True):
        self.config, self.data, self.device = config, data, device
        # First, before the model and the data's tensors: bf16 without bf16 units is refused here.
        self.precision = training_precision(config, device)
        self.keep_best = keep_best  # hold a copy of the best epoch's weights (final runs; sweeps skip it)
        if device.type == "cpu":
            keep_freed_memory()
        seed_everything(config.seed)
        self.model = build_parser(config, data, device).to(device)
        t = config.train
        # fused=True: one kernel over all parameters. The default on CPU is a Python loop over every
        # tensor, which costs more than a whole forward pass of the paper-size HAN at batch 64.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr_max, betas=(t.beta1, 0.999),
                                           eps=1e-8, weight_decay=t.weight_decay, fused=True)
        # One generator for data order and mixup draws; dropout uses torch's global RNG (seeded above).
        self.rng = torch.Generator().manual_seed(config.seed)
        train = data.split("train")
        n = len(train)
        if t.train_fraction < 1.0:
            keep = np.random.default_rng(config.seed).permutation(n)[: max(1, round(n * t.train_fraction))]
            self.train_idx = np.sort(keep)
        else:
            self.train_idx = np.arange(n)
        self.targets = prepare_targets(config, data, self.train_idx, device)
        idx = torch.from_numpy(self.train_idx)
        # Training tensors: gathered once (a copy only when a fraction is used).
        self.audio = tensor(train.audio, device) if t.train_fraction == 1.0 else tensor(train.audio[idx], device)
        self.visual = tensor(train.visual, device) if t.train_fraction == 1.0 else tensor(train.visual[idx], device)
        self.weak = tensor(train.weak[self.train_idx], device)
        self.z = {m: tensor(getattr(train, f"logits_{m}")[self.train_idx], device) for m in ("audio", "visual")}
        self.epoch = 0
        self.best_objective = -math.inf
        self.best_epoch = 0
        self.best_val: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[EpochReport] = []

    # -- one epoch -------------------------------------------------------------------------------
    LOSS_NAMES = ("total", "video", "segment", "mixup")  # the order of `step`'s return value

    def train_epoch(self) -> dict[str, float]:
        cfg, model = self.config, self.model
        model.train()
        n = self.audio.shape[0]
        order = send(torch.randperm(n, generator=self.rng), self.device)
        # Loss sums stay on the device (float64, as the Python floats summed before) and are read once per
        # epoch: a read per batch would make the host wait for every GPU step before queueing the next.
        sums = torch.zeros(len(self.LOSS_NAMES), dtype=torch.float64, device=self.device)
        batches = 0
        for start in range(0, n, cfg.train.batch_size):
            sums += self.step(order[start:start + cfg.train.batch_size])
            batches += 1
        return dict(zip(self.LOSS_NAMES, (sums / max(batches, 1)).tolist(), strict=True))

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimiser step on the training videos `idx` (on the device); returns the detached losses
        [total, video, segment, mixup] (`LOSS_NAMES`) as float64 on the device, without reading them."""
        cfg, model = self.config, self.model
        weak = self.weak[idx]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = model(self.audio[idx], self.visual[idx])
        video = losses.video_loss(out.video_prob.float(), weak)
        seg = torch.zeros((), device=self.device)
        mix = torch.zeros((), device=self.device)
        streams = (("audio", out.seg_logits_a, out.feats_a), ("visual", out.seg_logits_v, out.feats_v))
        for m, seg_logits, feats in streams:
            soft, hard = batch_targets(self.z[m][idx], self.targets.theta[m], weak, cfg.pseudo.temperature)
            target = soft if cfg.loss.segment_target == "soft" else hard
            seg = seg + losses.segment_loss(seg_logits.float(), target, weak, self.targets.w_pos[m],
                                            self.targets.w_neg[m])
            if cfg.loss.mixup:
                if cfg.loss.mixup_target == "soft":
                    mix_target = soft
                elif cfg.loss.mixup_target == "hard":
                    mix_target = hard
                else:
                    mix_target = losses.ave_mixup_targets(soft, cfg.loss.mixup_target)
                lam, perm = losses.sample_mixup(feats.shape[0] * feats.shape[1], cfg.loss.alpha, self.rng,
                                                  cfg.loss.beta)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    mix = mix + losses.mixup_loss(feats, mix_target, model.classify, lam, send(perm, self.device))
        total = video + cfg.loss.lambda_seg * seg + cfg.loss.lambda_mix * mix.float()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        self.optimizer.step()
        return torch.stack([total, video, seg, mix.float()]).detach().double()

    def run_epoch(self) -> EpochReport:
        cfg = self.config
        self.epoch += 1
        lr = epoch_lr(self.epoch, cfg.train.epochs, cfg.train.warmup_epochs, cfg.train.lr_max, cfg.train.lr_min)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        loss_means = self.train_epoch()
        # A plain dict: it goes into checkpoints, which load weights-only (no custom classes).
        val = dict(evaluate_split(self.model, self.data.split("val"), self.device, cfg, self.precision))
        objective = val[objective_name(cfg)]
        better = objective > self.best_objective if cfg.eval.selection == "first" else objective >= self.best_objective
        if better:
            self.best_objective, self.best_epoch, self.best_val = objective, self.epoch, dict(val)
            if self.keep_best:
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        report = EpochReport(epoch=self.epoch, lr=lr, seconds=time.perf_counter() - t0, losses=loss_means, val=val,
                             objective=objective, best_objective=self.best_objective, best_epoch=self.best_epoch,
                             improved=better)
        self.history.append(report)
        return report

    # -- resumable state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue bit-identically: weights, optimiser, RNGs, best-so-far.

        The tensors are the live ones (no copy of a 23 M-parameter model per epoch): serialise at once.
        """
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            # Dropout on a GPU draws from the device's generator, not the CPU one above.
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "best_objective": self.best_objective,
            "best_epoch": self.best_epoch,
            "best_val": self.best_val,
            "history": [asdict(h) for h in self.history],
        }
        if self.best_state is not None:
            state["best_model"] = self.best_state
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state`; one that does not fit this run's model (another parser size, another
        dataset's classes) or is damaged is a UwavError naming its file (`state["source"]`)."""
        source = state.get("source", "the resumable state")
        load_weights(self.model, state["model"], source, hint="; resume with the config the run was started with")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.epoch = int(state["epoch"])
            self.rng.set_state(state["rng"])
            torch.set_rng_state(state["torch_rng"])
            if self.device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
            self.best_objective = float(state["best_objective"])
            self.best_epoch = int(state["best_epoch"])
            self.best_val = dict(state["best_val"])
            self.history = [EpochReport(**h) for h in state.get("history", [])]
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise UwavError(f"{source}: not a usable resumable state ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''})") from None
        self.best_state = state.get("best_model")


def fit(config, data: ParserData, on_epoch: Callable[[EpochReport, Trainer], None] | None = None,
        resume_state: dict | None = None, keep_best: bool = True, progress: bool = True) -> FitResult:
    """Train the HAN parser on `data` under `config`; see the module docstring.

    on_epoch(report, trainer) runs after every epoch (checkpointing, tracking, Tune reports).
    resume_state: a `Trainer.state_dict()` to continue from. keep_best: hold the best epoch's weights
    in memory and return them in `FitResult.model` (the CLI's final runs); sweeps skip it.
    """
    device = resolve_device(config.train.device)
    trainer = Trainer(config, data, device, keep_best=keep_best)
    if resume_state is not None:
        trainer.load_state_dict(resume_state)
    bar = None
    if progress:
        bar = tqdm(total=config.train.epochs, initial=trainer.epoch, desc="train", unit="epoch", leave=False)
    while trainer.epoch < config.train.epochs:
        report = trainer.run_epoch()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{report.losses['total']:.3f}", val_type=f"{report.objective:.2f}",
                            best=f"{report.best_objective:.2f}")
        if on_epoch is not None:
            on_epoch(report, trainer)
    if bar is not None:
        bar.close()
    model = None
    if keep_best and trainer.best_state is not None:
        trainer.model.load_state_dict(trainer.best_state)
        model = trainer.model
    return FitResult(best_epoch=trainer.best_epoch, best_objective=trainer.best_objective,
                     best_val=trainer.best_val, history=trainer.history, model=model, precision=trainer.precision)
