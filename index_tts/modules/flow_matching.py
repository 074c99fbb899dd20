"""Conditional flow matching (CFM) sampler of the s2mel stage: Euler steps from noise to mel,
with classifier-free guidance (upstream `CFM.inference` / `solve_euler`).

Legend: B batch, T total frames (prompt P + generated), M mel bins, C content width, S style width.
    mu [B, T, C], x_lens [B], prompt [B, M, P], style [B, S] -> mel [B, M, T] (frames < P are zero)

The state dict is `estimator.*` (the DiT), matching the `cfm` entry of s2mel.pth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from index_tts.modules.dit import DiT, DiTConfig
from index_tts.modules.weight_norm import weights_computed_once


@dataclass(frozen=True)
class CFMConfig:
    dit: DiTConfig
    zero_prompt_speech_token: bool = False  # False in IndexTTS2; see the note in `inference`

    @classmethod
    def from_dict(cls, s2mel: dict) -> "CFMConfig":
        if s2mel.get("dit_type", "DiT") != "DiT":
            raise NotImplementedError(f"unknown dit_type {s2mel.get('dit_type')!r}")
        return cls(
            dit=DiTConfig.from_dict(s2mel),
            zero_prompt_speech_token=bool(s2mel["DiT"].get("zero_prompt_speech_token", False)),
        )


def time_grid(n_timesteps: int, device=None) -> Tensor:
    """The Euler time grid: n_timesteps + 1 points from 0 to 1, float32."""
    return torch.linspace(0, 1, n_timesteps + 1, device=device)


class CFM(nn.Module):
    def __init__(self, config: CFMConfig):
        super().__init__()
        self.config = config
        self.estimator = DiT(config.dit)

    @torch.inference_mode()
    def inference(
        self,
        mu: Tensor,
        x_lens: Tensor,
        prompt: Tensor,
        style: Tensor,
        n_timesteps: int = 25,
        cfg_rate: float = 0.7,
        z: Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        prompt_velocity: bool = True,
    ) -> Tensor:
        """Integrate the flow from t=0 to 1 in `n_timesteps` Euler steps.

        z is the standard-normal initial noise [B, M, T]; when None it is drawn with `generator`.
        Either way it is scaled by `temperature`, as upstream scales its `randn` draw. `z` is not
        modified in place.

        Guidance: v = (1 + cfg_rate) * v(cond) - cfg_rate * v(null), where the null branch has the
        prompt mel, style and mu zeroed (x and t shared). Both branches run as one stacked batch.

        prompt_velocity=False skips the post-net of the prompt frames (`DiT.forward`'s frames_from),
        whose velocity is zeroed after every step anyway: the same result up to summation order, and
        about 70% of the post-net's work at a 5 s prompt. The engine uses it in every mode; the
        default keeps upstream's computation (the bench's original-style path).
        """
        B, T = mu.shape[0], mu.shape[1]
        M = self.config.dit.in_channels
        if z is None:
            z = torch.randn(B, M, T, generator=generator, device=mu.device, dtype=mu.dtype)
        elif tuple(z.shape) != (B, M, T):
            raise ValueError(f"z has shape {tuple(z.shape)}, expected {(B, M, T)}")
        x = z * temperature  # a new tensor, so the caller's z stays untouched
        t_span = time_grid(n_timesteps, device=mu.device)

        P = prompt.shape[-1]
        prompt_x = torch.zeros_like(x)
        prompt_x[..., :P] = prompt
        x[..., :P] = 0  # the prompt region is not generated: it is given through prompt_x
        if self.config.zero_prompt_speech_token:
            # Upstream's exact behaviour: this slices the *channel* axis of mu [B, T, C].
            mu = mu.clone()
            mu[..., :P] = 0

        if cfg_rate > 0:
            # Constant halves of the stacked CFG batch: row block 0 conditional, block 1 null.
            prompt_x2 = torch.cat([prompt_x, torch.zeros_like(prompt_x)])
            style2 = torch.cat([style, torch.zeros_like(style)])
            mu2 = torch.cat([mu, torch.zeros_like(mu)])
            x_lens2 = x_lens if x_lens.numel() == 1 else torch.cat([x_lens, x_lens])

        # t is the float32 running sum t += dt, not t_span[k]: the two differ in the last bits.
        t = t_span[0]
        start = 0 if prompt_velocity else P  # v: the velocity of frames start.. [B, M, T - start]
        with weights_computed_once(self.estimator):  # g*v/|v| once, not 25 times
            for k in range(1, len(t_span)):
                dt = t_span[k] - t_span[k - 1]
                if cfg_rate > 0:
                    v2 = self.estimator(torch.cat([x, x]), prompt_x2, x_lens2, t.expand(2 * B), style2, mu2, start)
                    v_cond, v_null = v2.chunk(2, dim=0)
                    v = (1.0 + cfg_rate) * v_cond - cfg_rate * v_null
                else:
                    v = self.estimator(x, prompt_x, x_lens, t.expand(B), style, mu, start)
                if start:
                    x = torch.cat([x[..., :start], x[..., start:] + dt * v], dim=-1)
                else:
                    x = x + dt * v
                t = t + dt
                x[..., :P] = 0
        return x
