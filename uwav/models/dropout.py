"""Dropout whose mask costs about a quarter of the random draws of `nn.Dropout` on CPU.

`nn.Dropout` draws one random number per element (`bernoulli_`); at the paper's HAN size that is a
quarter of a bf16 training step on a 2-core CPU. Here each 64-bit draw of torch's generator gives four
uniforms: three 16-bit ones and, because `random_()` on int64 leaves the sign bit clear, one 15-bit one.
Each is compared with a threshold for the same probability p_eff = round(p · 2^15) / 2^15 (0.1 ->
0.100006), and kept values are scaled by 1 / (1 − p_eff) so the layer stays unbiased. Draws come from
torch's global generator, so a seeded run is reproducible, exactly like nn.Dropout. Off the CPU it is
plain `F.dropout`, whose fused kernel is the faster one there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS15 = 1 << 15


class FastDropout(nn.Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), found {p}")
        self.p = p
        self.t15 = round(p * _LEVELS15)  # drop a 15-bit uniform u in [0, 2^15) when u < t15
        self.scale = 1.0 / (1.0 - self.t15 / _LEVELS15)
        # Per 16-bit lane of an int64 (little-endian): three signed 16-bit uniforms in [−2^15, 2^15),
        # where "u < 2·t15 − 2^15" has the same probability, then the 15-bit top lane.
        low = 2 * self.t15 - _LEVELS15
        self.register_buffer("lane_threshold", torch.tensor([low, low, low, self.t15], dtype=torch.int16),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.t15 == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)  # one fused kernel on accelerators, exact p
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
        keep = bits.view(torch.int16).view(-1, 4) >= self.lane_threshold.to(x.device)
        mask = keep.view(-1)[:n].view(x.shape).to(x.dtype).mul_(self.scale)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
