"""Exact per-sample gradients: the slow, obvious oracle that LoGra is checked against.

Two ways, both full-dimensional (never use them on large models):

- :func:`per_sample_gradients_loop`: one ``torch.autograd.grad`` per sample, each sample alone and
  unpadded. The most obvious implementation; used by the tests.
- :func:`per_sample_gradients_vmap`: ``torch.func.vmap(grad(ℓ))`` over the padded batch; the naive
  baseline of ``benchmarks/labeling.py``.

:func:`project_exact_gradients` applies LoGra's projection explicitly, P_out · G · P_inᵀ per layer
(transposing ``Conv1D`` gradients to the (n_out, n_in) convention first).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from marketplace.valuation.logra import input_embeddings
from marketplace.valuation.projection import Projection
from marketplace.valuation.tokenization import TokenBatch, per_sample_loss

__all__ = [
    "parameter_names_of_layers",
    "per_sample_gradients_loop",
    "per_sample_gradients_vmap",
    "project_exact_gradients",
]


def parameter_names_of_layers(projection: Projection) -> list[str]:
    """The parameters LoGra covers, in projection order: each watched ``.weight`` (and ``.bias`` when
    the projection includes it)."""
    names = []
    for lp in projection.layers:
        names.append(f"{lp.layer.name}.weight")
        if lp.bias:
            names.append(f"{lp.layer.name}.bias")
    return names


def _params(model: torch.nn.Module, names: Sequence[str] | None) -> dict[str, torch.Tensor]:
    named: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=True))
    if names is None:
        return named
    return {n: named[n] for n in names}


def per_sample_gradients_loop(
    model: torch.nn.Module, batch: TokenBatch, param_names: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """∇ℓ_i for each sample alone (unpadded). Returns name → (B, *param.shape), model dtype."""
    params = _params(model, param_names)
    saved = {n: p.requires_grad for n, p in params.items()}
    out: dict[str, list[torch.Tensor]] = {n: [] for n in params}
    try:
        for p in params.values():
            p.requires_grad_(True)
        for i in range(batch.n_samples):
            n_real = int(batch.attention_mask[i].sum())
            ids = batch.input_ids[i : i + 1, :n_real]
            attn = batch.attention_mask[i : i + 1, :n_real]
            mask = batch.loss_mask[i : i + 1, :n_real]
            with torch.enable_grad():
                logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits
                loss = per_sample_loss(logits, ids, mask)[0]
                grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (name, p), g in zip(params.items(), grads, strict=True):
                out[name].append(torch.zeros_like(p) if g is None else g.detach())
    finally:
        for n, p in params.items():
            p.requires_grad_(saved[n])
    return {n: torch.stack(v) for n, v in out.items()}


def per_sample_gradients_vmap(
    model: torch.nn.Module, batch: TokenBatch, param_names: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """∇ℓ_i via ``torch.func.vmap(grad)`` over the padded batch. Returns name → (B, *param.shape)."""
    from torch.func import functional_call, grad, vmap

    watched = {n: p.detach() for n, p in _params(model, param_names).items()}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in watched}
    buffers = dict(model.named_buffers())

    # No attention mask under vmap (transformers' mask builder branches on its values, which vmap
    # forbids). With right padding a causal model's real positions never see the padding, so the
    # masked loss, and its gradient, are the same; the tests check this against the unpadded loop.
    # Token embeddings are looked up outside the model call (inputs_embeds), because transformers
    # inspects input_ids for padding with a data-dependent branch that vmap also forbids.
    embeddings = input_embeddings(model)
    emb_name = next(n for n, m in model.named_modules() if m is embeddings)

    def loss_one(w: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        state = {**frozen, **buffers, **w}
        embeds = torch.nn.functional.embedding(ids[None], state[f"{emb_name}.weight"])
        logits = functional_call(model, state, args=(), kwargs={"inputs_embeds": embeds, "use_cache": False}).logits
        return per_sample_loss(logits, ids[None], mask[None])[0]

    return vmap(grad(loss_one), in_dims=(None, 0, 0))(watched, batch.input_ids, batch.loss_mask)


def project_exact_gradients(grads: dict[str, torch.Tensor], projection: Projection) -> torch.Tensor:
    """P_out · G_i · P_inᵀ per watched layer, flattened and concatenated: (B, D) in the grads' dtype.

    With a bias, G_i = [∇W | ∇b] (n_out × (n_in + 1)) and P_in = blockdiag(P_in, 1).
    """
    parts = []
    for lp in projection.layers:
        g = grads[f"{lp.layer.name}.weight"]  # (B, n_out, n_in) Linear, (B, n_in, n_out) Conv1D
        if lp.layer.kind == "conv1d":
            g = g.transpose(1, 2)
        if lp.bias:
            g = torch.cat([g, grads[f"{lp.layer.name}.bias"].unsqueeze(-1)], dim=2)  # (B, n_out, n_in + 1)
        p_out = lp.dense_out().to(g.device, g.dtype)
        p_in = lp.dense_in().to(g.device, g.dtype)
        parts.append(torch.einsum("ro,boi,si->brs", p_out, g, p_in).reshape(g.shape[0], -1))
    return torch.cat(parts, dim=1)
