"""CLAP audio and text encoders through laion_clap's model factory (`clap_module`); L2-normalised embeddings.

Default model: HTSAT-tiny audio tower with fusion (aff_2d) and the RoBERTa text tower, i.e. the
`CLAP_Module(enable_fusion=True)` of the releases, to be loaded with the 630k-fusion-best checkpoint from a
local path (`checkpoint`). Without one the weights are random (tests).

Audio: each 1-s chunk is repeat-padded to the model's 10-s input (tiled floor(480000/len) times, rest zeros)
and goes through the fusion model without the long-audio path (data-formats.md §4). The mel spectrogram is
laion_clap's `get_mel` (torchaudio MelSpectrogram, HTK mel scale, no filter norm, power to dB) rewritten
in torch, because laion_clap takes it from torchaudio, which it does not install.

Text: the RoBERTa tokenizer comes from `tokenizer` (a folder with vocab.json and merges.txt) or, by default,
"roberta-base" from the local HuggingFace cache; the hub is offline, so a missing tokenizer is an error, never
a download, and a degenerate one is refused (compat.check_distinct_tokens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from uwav.checkpoints import load_weights, read_torch_file
from uwav.errors import UwavError
from uwav.extract import compat

DEFAULT_AUDIO_MODEL = "HTSAT-tiny"
DEFAULT_TOKENIZER = "roberta-base"
TEXT_LENGTH = 77  # laion_clap's tokenizer max_length


def melscale_fbanks(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk") -> [n_freqs, n_mels]."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    m_min, m_max = (2595.0 * math.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    f_pts = 700.0 * (10 ** (torch.linspace(m_min, m_max, n_mels + 2, dtype=torch.float64) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0).float()


def log_mel(waves: torch.Tensor, cfg: dict) -> torch.Tensor:
    """laion_clap get_mel for a batch: waves [B, S] -> dB mel [B, frames, mel_bins]."""
    n_fft, hop = cfg["window_size"], cfg["hop_size"]
    spec = (
        torch.stft(
            waves,
            n_fft=n_fft,
            hop_length=hop,
            win_length=n_fft,
            window=torch.hann_window(n_fft, device=waves.device),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()
        ** 2
    )  # [B, F, frames]
    fb = melscale_fbanks(n_fft // 2 + 1, cfg["fmin"], cfg["fmax"], cfg["mel_bins"], cfg["sample_rate"])
    mel = torch.einsum("bft,fm->btm", spec, fb.to(waves.device))
    return 10.0 * torch.log10(torch.clamp(mel, min=1e-10))


def repeat_pad(chunks: np.ndarray, length: int) -> np.ndarray:
    """[T, S] -> [T, length]: tiled floor(length / S) times, the rest zero-filled (laion_clap 'repeatpad')."""
    t, s = chunks.shape
    if s >= length:
        return chunks[:, :length]
    tiled = np.tile(chunks, (1, length // s))
    return np.pad(tiled, ((0, 0), (0, length - tiled.shape[1])))


@dataclass
class ClapEncoder:
    model: torch.nn.Module
    audio_cfg: dict
    tokenizer_source: str
    name: str
    checkpoint: str
    device: torch.device
    tokenizer: object = None  # loaded on first encode_texts

    @property
    def dim(self) -> int:
        return int(self.model.joint_embed_shape)

    @torch.no_grad()
    def encode_audio(self, chunks: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """chunks [T, S] float32 mono at the model's rate -> [T, D] float32, L2-normalised."""
        padded = repeat_pad(np.asarray(chunks, dtype=np.float32), int(self.audio_cfg["clip_samples"]))
        out = []
        for start in range(0, len(padded), batch_size):
            wave = torch.from_numpy(padded[start : start + batch_size]).to(self.device)
            mel = log_mel(wave, self.audio_cfg)
            # Not longer than 10 s: the fusion input is the same mel four times (laion_clap).
            batch = {
                "waveform": wave,
                "mel_fusion": mel[:, None].expand(-1, 4, -1, -1).contiguous(),
                "longer": torch.zeros(len(wave), 1, dtype=torch.bool, device=self.device),
            }
            out.append(
                self.model.get_audio_embedding(
                    [{k: v[i] for k, v in batch.items()} for i in range(len(wave))]
                )
                .float()
                .cpu()
            )
        return torch.nn.functional.normalize(torch.cat(out), dim=-1).numpy().astype(np.float32)

    def _tokenizer(self):
        if self.tokenizer is None:
            from transformers import RobertaTokenizer

            try:
                self.tokenizer = RobertaTokenizer.from_pretrained(self.tokenizer_source)
            except (OSError, ValueError, TypeError) as err:
                raise UwavError(
                    f"CLAP tokenizer {self.tokenizer_source!r}: cannot load it offline "
                    f"({type(err).__name__}); give --clap-tokenizer DIR with RoBERTa's vocab.json "
                    "and merges.txt, or put roberta-base in the HuggingFace cache"
                ) from None
        return self.tokenizer

    @torch.no_grad()
    def encode_texts(self, prompts: list[str]) -> np.ndarray:
        """C prompts -> [C, D] float32, L2-normalised; refuses a tokenizer that collapses prompts."""
        tokens = self._tokenizer()(
            prompts, padding="max_length", truncation=True, max_length=TEXT_LENGTH, return_tensors="pt"
        )
        compat.check_distinct_tokens(
            tokens["input_ids"].numpy(), prompts, f"{self.tokenizer_source!r} (CLAP text)"
        )
        emb = self.model.get_text_embedding(
            {k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        ).float()
        return torch.nn.functional.normalize(emb, dim=-1).cpu().numpy().astype(np.float32)


def _state_dict(path: str) -> dict:
    ckpt = read_torch_file(path, "CLAP")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise UwavError(f"{path}: not a CLAP checkpoint (expected a state dict or a dict with 'state_dict')")
    if next(iter(state)).startswith("module."):  # saved from DistributedDataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_clap(
    checkpoint: str | None = None,
    tokenizer: str = DEFAULT_TOKENIZER,
    audio_model: str = DEFAULT_AUDIO_MODEL,
    fusion: bool = True,
    device: str | torch.device = "cpu",
    text_config: dict | None = None,
) -> ClapEncoder:
    """laion_clap's model with `checkpoint` (a local file; None = random weights).

    text_config overrides the roberta-base architecture of the text tower (tests use a tiny one).
    """
    clap_module = compat.import_clap_module()
    try:
        with compat.roberta_from_config(text_config):
            model, model_cfg = clap_module.create_model(
                audio_model,
                "roberta",
                precision="fp32",
                device=torch.device(device),
                enable_fusion=fusion,
                fusion_type="aff_2d" if fusion else "None",
            )
    except RuntimeError as err:
        raise UwavError(f"CLAP audio model {audio_model!r}: {err}") from None
    if checkpoint:
        state = _state_dict(checkpoint)
        own = model.state_dict()
        # Older transformers stored this buffer; newer ones compute it (laion_clap drops it the same way).
        state = {k: v for k, v in state.items() if k in own or k != "text_branch.embeddings.position_ids"}
        load_weights(model, state, str(checkpoint), hint=f" (CLAP {audio_model}, fusion={fusion})")
    return ClapEncoder(
        model.eval(),
        dict(model_cfg["audio_cfg"]),
        tokenizer,
        f"{audio_model}{'-fusion' if fusion else ''}+roberta",
        str(checkpoint or "none"),
        torch.device(device),
    )
