"""LoGra: every sample's projected gradient from one forward and one backward pass over a batch.

For each watched layer a forward hook projects the layer input, x̃_t = P_in x_t, and registers a
tensor hook on the layer output that projects the output gradient, δ̃_t = P_out δ_t, and forms

    G̃_i = Σ_t δ̃_{i,t} x̃_{i,t}ᵀ            (one batched matmul over the whole batch: (B, r_out, r_in))

(Choe et al. 2024, "What is your data worth to GPT?", LoGra; docs/valuation.md). The batch loss is the
SUM of per-sample losses, so δ_{i,t} belongs to sample i only and every G̃_i is that sample's own
gradient. Padding never contributes: its loss is masked and, the model being causal with right
padding, δ is exactly zero there.

No parameter gradient is formed: parameters are frozen and the backward pass differentiates with
respect to the input-embedding output only (a leaf made in a forward hook), so autograd skips every
weight-gradient matmul — about a third of a training backward pass. ``benchmarks/labeling.py``
measures the difference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from marketplace.valuation.projection import Projection
from marketplace.valuation.tokenization import TokenBatch, per_sample_loss

__all__ = ["KFACStats", "LoGraGradientComputer", "ProjectedGradients", "input_embeddings"]

log = logging.getLogger(__name__)


def input_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    """The token-embedding module of a transformers model (``get_input_embeddings()``)."""
    getter = getattr(model, "get_input_embeddings", None)
    module = getter() if callable(getter) else None
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{type(model).__name__} has no get_input_embeddings(); LoGra needs a transformers model")
    return module


def _to_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` on the CPU. From a GPU, through page-locked memory (torch caches those blocks): a pageable
    copy of a batch's gradients took as long as the backward pass itself on an H100 VM
    (benchmarks/results/gpu_check.md)."""
    if t.device.type != "cuda":
        return t.cpu()
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t)
    return out


@dataclass
class KFACStats:
    """Sums for K-FAC in the projected space, per layer name (float64).

    a_sum[l] = Σ over real tokens of x̃ x̃ᵀ (r_in + b, r_in + b; with a bias x̃ ends with a constant 1);
    s_sum[l] = Σ over samples and tokens of δ̃ δ̃ᵀ (r_out, r_out). A = a_sum / n_tokens,
    S = s_sum / n_samples (see ``preconditioner``).
    """

    a_sum: dict[str, torch.Tensor] = field(default_factory=dict)
    s_sum: dict[str, torch.Tensor] = field(default_factory=dict)
    n_tokens: int = 0
    n_samples: int = 0

    def add(self, other: KFACStats) -> None:
        for name, value in other.a_sum.items():
            self.a_sum[name] = self.a_sum[name] + value if name in self.a_sum else value.clone()
        for name, value in other.s_sum.items():
            self.s_sum[name] = self.s_sum[name] + value if name in self.s_sum else value.clone()
        self.n_tokens += other.n_tokens
        self.n_samples += other.n_samples


@dataclass(frozen=True)
class ProjectedGradients:
    grads: torch.Tensor  # (B, D) in the requested output dtype, on CPU
    losses: torch.Tensor  # (B,) per-sample loss, nats/token, on CPU
    kfac: KFACStats | None


class LoGraGradientComputer:
    """Attach to a model + projection once; call :meth:`compute` per batch.

    Hooks live only for the duration of one :meth:`compute` call, so the model stays usable for
    anything else in between. Not thread-safe: one computer (and model) per thread.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        projection: Projection,
        *,
        output_dtype: torch.dtype = torch.float32,
        collect_kfac: bool = False,
    ) -> None:
        self.model = model
        self.projection = projection
        self.output_dtype = output_dtype
        self.collect_kfac = collect_kfac
        modules = dict(model.named_modules())
        missing = [n for n in projection.layer_names if n not in modules]
        if missing:
            raise ValueError(f"projection names layers the model does not have: {missing[:5]}")
        self._modules = [modules[n] for n in projection.layer_names]
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        # Transposed once and cached on the model's device/dtype: x (.., n_in) @ P_inᵀ (n_in, r_in).
        self._p_in_t = [None if lp.p_in is None else lp.p_in.t().contiguous().to(self.device, self.dtype)
                        for lp in projection.layers]
        self._p_out_t = [None if lp.p_out is None else lp.p_out.t().contiguous().to(self.device, self.dtype)
                         for lp in projection.layers]

    def compute(self, batch: TokenBatch) -> ProjectedGradients:
        """Projected per-sample gradients of ℓ_i for every sample of the batch: (B, D)."""
        batch = batch.to(self.device)
        bsz = batch.n_samples
        n_layers = len(self._modules)
        blocks: list[torch.Tensor | None] = [None] * n_layers
        kfac = KFACStats() if self.collect_kfac else None
        device_a: dict[str, torch.Tensor] = {}  # this batch's K-FAC sums, on the model's device
        device_s: dict[str, torch.Tensor] = {}
        real = batch.attention_mask.to(self.dtype).unsqueeze(-1)  # (B, T, 1)
        leaf: dict[str, torch.Tensor] = {}
        handles: list[Any] = []

        def embedding_hook(_mod: torch.nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
            # The only tensor autograd differentiates with respect to (parameters are frozen).
            leaf["x"] = out.detach().requires_grad_(True)
            return leaf["x"]

        def make_forward_hook(idx: int) -> Callable[[torch.nn.Module, Any, torch.Tensor], None]:
            name = self.projection.layers[idx].layer.name
            p_in_t, p_out_t = self._p_in_t[idx], self._p_out_t[idx]
            with_bias = self.projection.layers[idx].bias

            def forward_hook(_mod: torch.nn.Module, inputs: Any, out: torch.Tensor) -> None:
                if not out.requires_grad:
                    return
                with torch.no_grad():
                    x = inputs[0].detach()
                    x_proj = x if p_in_t is None else x @ p_in_t  # (B, T, r_in)
                    if with_bias:  # homogeneous coordinate: the bias sees a constant input 1
                        x_proj = torch.cat([x_proj, x_proj.new_ones(*x_proj.shape[:-1], 1)], dim=-1)  # (B, T, r_in+1)
                    if kfac is not None:
                        flat = x_proj.reshape(-1, x_proj.shape[-1])
                        a = (flat * real.reshape(-1, 1)).t() @ flat  # (r_in, r_in)
                        device_a[name] = device_a.get(name, 0) + a.double()

                def grad_hook(grad: torch.Tensor) -> None:
                    with torch.no_grad():
                        d_proj = grad if p_out_t is None else grad @ p_out_t  # (B, T, r_out)
                        g = torch.bmm(d_proj.transpose(1, 2), x_proj)  # (B, r_out, r_in [+1])
                        flat_g = g.reshape(bsz, -1)
                        prev = blocks[idx]
                        blocks[idx] = flat_g if prev is None else prev + flat_g  # a module used twice
                        if kfac is not None:
                            dflat = d_proj.reshape(-1, d_proj.shape[-1])
                            device_s[name] = device_s.get(name, 0) + (dflat.t() @ dflat).double()

                out.register_hook(grad_hook)

            return forward_hook

        handles.append(input_embeddings(self.model).register_forward_hook(embedding_hook))
        for idx, module in enumerate(self._modules):
            handles.append(module.register_forward_hook(make_forward_hook(idx)))
        try:
            with torch.enable_grad():
                out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
                losses = per_sample_loss(out.logits, batch.input_ids, batch.loss_mask)  # (B,)
                if losses.requires_grad:
                    # SUM, not mean: sample i's gradient is then exactly ∇ℓ_i (samples are separable).
                    torch.autograd.grad(losses.sum(), [leaf["x"]])
        finally:
            for h in handles:
                h.remove()
        parts = [
            b if b is not None else torch.zeros(bsz, lp.dim, device=self.device, dtype=self.dtype)
            for b, lp in zip(blocks, self.projection.layers, strict=True)
        ]
        grads = _to_host(torch.cat(parts, dim=1).to(dtype=self.output_dtype))  # (B, D)
        if kfac is not None:
            # summed on the model's device and moved once per batch: no host round trip inside the hooks
            kfac.a_sum.update((name, _to_host(v)) for name, v in device_a.items())
            kfac.s_sum.update((name, _to_host(v)) for name, v in device_s.items())
            kfac.n_tokens = int(batch.attention_mask.sum())
            kfac.n_samples = bsz
        return ProjectedGradients(grads=grads, losses=_to_host(losses.detach().to(self.output_dtype)), kfac=kfac)
