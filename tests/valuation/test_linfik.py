"""LinFiK against obvious dense implementations: identity at full rank, damped Fisher, K-FAC, cosine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marketplace.valuation.config import CheckpointSpec, LinFiKConfig, ProjectionConfig
from marketplace.valuation.exact import parameter_names_of_layers, per_sample_gradients_loop
from marketplace.valuation.linfik import build_query, score_against_query
from marketplace.valuation.logra import LoGraGradientComputer
from marketplace.valuation.preconditioner import damped_fisher_solve, kfac_solve
from marketplace.valuation.projection import LayerProjection, Projection, WatchedLayer, build_projection
from tests.support.tiny_models import padded_batch, tiny_gpt2, tiny_llama

ETA = 1e-3


@pytest.mark.parametrize("make_model", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
def test_identity_full_rank_linfik_equals_exact_dot_product(make_model) -> None:  # type: ignore[no-untyped-def]
    model = make_model()
    proj = build_projection(model, ProjectionConfig(rank_in=4096, rank_out=4096))  # capped → identity
    assert all(lp.p_in is None and lp.p_out is None for lp in proj.layers)
    target = padded_batch([9, 6, 11], seed=7)
    train = padded_batch([12, 4, 8, 10, 7], prompt_tokens=[3, 1, 2, 1, 5], seed=8)
    comp = LoGraGradientComputer(model, proj, output_dtype=torch.float64)
    query = build_query(comp.compute(target).grads.mean(dim=0), proj, eta=ETA, preconditioner="identity")
    fast = score_against_query(comp.compute(train).grads, query).double()

    names = parameter_names_of_layers(proj)
    g_target = per_sample_gradients_loop(model, target, names)
    g_train = per_sample_gradients_loop(model, train, names)
    slow = sum(
        ETA * (g_train[n].flatten(1) @ g_target[n].flatten(1).mean(dim=0)) for n in names
    )
    assert isinstance(slow, torch.Tensor)
    scale = float(slow.abs().max())
    assert scale > 0
    assert float((fast - slow).abs().max()) < 1e-5 * scale  # query and dot product are float32


def _fake_projection(shapes: list[tuple[int, int]]) -> Projection:
    layers = tuple(
        LayerProjection(layer=WatchedLayer(name=f"l{i}", kind="linear", n_in=r_in, n_out=r_out),
                        rank_in=r_in, rank_out=r_out, p_in=None, p_out=None)
        for i, (r_out, r_in) in enumerate(shapes)
    )
    return Projection(config=ProjectionConfig(), layers=layers)


def test_fisher_query_matches_dense_inverse() -> None:
    rng = np.random.default_rng(0)
    proj = _fake_projection([(3, 4), (2, 5)])  # d = 12 and 10
    n = 9  # fewer samples than dims: the damping is what makes H invertible
    g_train = rng.normal(size=(n, proj.dim))
    g_target = rng.normal(size=proj.dim)
    slices = proj.layer_slices()

    def gram(_idx: int, sl: slice) -> tuple[torch.Tensor, int]:
        block = torch.from_numpy(g_train[:, sl])
        return block.T @ block, n

    q = build_query(torch.from_numpy(g_target), proj, eta=0.5, preconditioner="fisher", damping_ratio=0.1,
                    gram=gram).vector.double().numpy()
    expected = []
    for sl in slices:
        h = g_train[:, sl].T @ g_train[:, sl] / n
        lam = 0.1 * np.linalg.eigvalsh(h).mean()
        expected.append(0.5 * np.linalg.inv(h + lam * np.eye(h.shape[0])) @ g_target[sl])
    np.testing.assert_allclose(q, np.concatenate(expected), rtol=1e-5, atol=1e-6)


def test_kfac_solve_matches_dense_kronecker() -> None:
    rng = np.random.default_rng(1)
    r_out, r_in = 3, 5
    xa = rng.normal(size=(40, r_in))
    xs = rng.normal(size=(7, r_out))
    a = xa.T @ xa / 40
    s = xs.T @ xs / 7
    m = rng.normal(size=(r_out, r_in))
    got = kfac_solve(torch.from_numpy(a), torch.from_numpy(s), torch.from_numpy(m.reshape(-1)), 0.1).numpy()
    h = np.kron(s, a)  # row-major vec(δ xᵀ) = δ ⊗ x
    lam = 0.1 * np.linalg.eigvalsh(h).mean()
    want = np.linalg.solve(h + lam * np.eye(h.shape[0]), m.reshape(-1))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_damped_fisher_solve_matches_dense() -> None:
    rng = np.random.default_rng(2)
    g = rng.normal(size=(5, 8))
    rhs = rng.normal(size=8)
    got = damped_fisher_solve(torch.from_numpy(g.T @ g), 5, torch.from_numpy(rhs), 0.3).numpy()
    h = g.T @ g / 5
    want = np.linalg.inv(h + 0.3 * np.trace(h) / 8 * np.eye(8)) @ rhs
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_kfac_statistics_from_hooks_match_explicit_activations_and_output_gradients() -> None:
    model = tiny_gpt2()
    proj = build_projection(model, ProjectionConfig(rank_in=8, rank_out=6, seed=1))
    batch = padded_batch([10, 4, 7], prompt_tokens=[3, 1, 1])
    out = LoGraGradientComputer(model, proj, output_dtype=torch.float64, collect_kfac=True).compute(batch)
    assert out.kfac is not None
    assert out.kfac.n_tokens == 21 and out.kfac.n_samples == 3

    # explicit: capture inputs, and outputs with retain_grad, on one ordinary backward of Σ_i ℓ_i
    modules = dict(model.named_modules())
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for lp in proj.layers:
        def hook(_m, inp, o, name=lp.layer.name):  # type: ignore[no-untyped-def]
            inputs[name] = inp[0].detach()
            o.retain_grad()
            outputs[name] = o
        handles.append(modules[lp.layer.name].register_forward_hook(hook))
    model.requires_grad_(True)
    try:
        from marketplace.valuation.tokenization import per_sample_loss

        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        per_sample_loss(logits, batch.input_ids, batch.loss_mask).sum().backward()
    finally:
        for h in handles:
            h.remove()
        model.requires_grad_(False)
        model.zero_grad(set_to_none=True)
    real = batch.attention_mask.bool()
    for lp in proj.layers:
        name = lp.layer.name
        x = inputs[name][real]  # (N_tok, n_in)
        if lp.bias:
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)  # the bias's constant input
        x = x @ lp.dense_in().double().T  # (N_tok, r_in [+1])
        d = outputs[name].grad.reshape(-1, lp.layer.n_out) @ lp.dense_out().double().T  # (B·T, r_out)
        torch.testing.assert_close(out.kfac.a_sum[name], x.T @ x, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(out.kfac.s_sum[name], d.T @ d, rtol=1e-9, atol=1e-14)


def test_cosine_divides_by_the_gradient_norm() -> None:
    proj = _fake_projection([(2, 3)])
    g = torch.tensor([[3.0, 4.0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    q = build_query(torch.tensor([1.0, 2, 0, 0, 0, 0]), proj, eta=2.0, preconditioner="identity")
    plain = score_against_query(g, q)
    cos = score_against_query(g, q, cosine=True)
    torch.testing.assert_close(plain, torch.tensor([22.0, 0.0, 6.0]))
    torch.testing.assert_close(cos, torch.tensor([22.0 / 5, 0.0, 6.0 / 6**0.5]))


def test_config_is_frozen_validated_and_hashed() -> None:
    a = LinFiKConfig()
    b = LinFiKConfig(eta=2e-3)
    assert a.config_hash() == LinFiKConfig().config_hash() != b.config_hash()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        a.eta = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="preconditioner"):
        LinFiKConfig(preconditioner="newton")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LinFiKConfig(eta=-1.0)
    spec = CheckpointSpec.parse("/models/ckpt:500:2e-3")
    assert (spec.path, spec.eta) == ("/models/ckpt:500", 2e-3)
    with pytest.raises(ValueError, match="DIR:ETA"):
        CheckpointSpec.parse("nocolon")
