"""LoGra hooks against the explicit projection of exact per-sample gradients (float64, tiny models)."""

from __future__ import annotations

import pytest
import torch

from marketplace.errors import ConfigError
from marketplace.valuation.config import ProjectionConfig
from marketplace.valuation.exact import (
    parameter_names_of_layers,
    per_sample_gradients_loop,
    per_sample_gradients_vmap,
    project_exact_gradients,
)
from marketplace.valuation.logra import LoGraGradientComputer
from marketplace.valuation.projection import Projection, build_projection, find_watched_layers
from marketplace.valuation.tokenization import TokenBatch
from tests.support.tiny_models import MODELS, padded_batch, rel_err, tiny_gpt2, tiny_llama


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("prompt", [False, True], ids=["plain", "prompt-masked"])
def test_hooks_equal_projected_exact_gradients(arch: str, prompt: bool) -> None:
    model = MODELS[arch]()
    proj = build_projection(model, ProjectionConfig(rank_in=8, rank_out=6, seed=3))
    assert all(lp.bias == (arch == "gpt2-conv1d") for lp in proj.layers)  # Llama-style layers have no bias
    lengths = [12, 5, 9, 12, 3]
    batch = padded_batch(lengths, prompt_tokens=[4, 2, 6, 1, 1] if prompt else None)
    fast = LoGraGradientComputer(model, proj, output_dtype=torch.float64).compute(batch).grads

    exact = per_sample_gradients_loop(model, batch, parameter_names_of_layers(proj))
    slow = project_exact_gradients(exact, proj)
    assert fast.shape == (len(lengths), proj.dim)
    assert fast.dtype == torch.float64
    assert rel_err(fast, slow) < 1e-4
    # per sample too: a mixed-up row would hide in the global norm
    for i in range(len(lengths)):
        assert rel_err(fast[i], slow[i]) < 1e-4
    # and the gradients are not trivially zero
    assert float(slow.norm()) > 1e-3


def test_bias_column_can_be_left_out() -> None:
    model = tiny_gpt2()
    with_bias = build_projection(model, ProjectionConfig(rank_in=8, rank_out=6))
    without = build_projection(model, ProjectionConfig(rank_in=8, rank_out=6, include_bias=False))
    assert with_bias.dim == without.dim + sum(lp.rank_out for lp in with_bias.layers)
    batch = padded_batch([9, 4, 7])
    a = LoGraGradientComputer(model, with_bias, output_dtype=torch.float64).compute(batch).grads
    b = LoGraGradientComputer(model, without, output_dtype=torch.float64).compute(batch).grads
    # dropping the bias column of every block leaves exactly the weight-only projection
    keep = torch.cat([torch.arange(sl.start, sl.stop).view(lp.rank_out, lp.cols)[:, :-1].reshape(-1)
                      for lp, sl in zip(with_bias.layers, with_bias.layer_slices(), strict=True)])
    assert rel_err(a[:, keep], b) < 1e-12
    slow = project_exact_gradients(per_sample_gradients_loop(model, batch, parameter_names_of_layers(without)),
                                   without)
    assert rel_err(b, slow) < 1e-4


def test_gpt2_watches_conv1d_and_llama_watches_linear() -> None:
    kinds = {lay.kind for lay in find_watched_layers(tiny_gpt2(), ProjectionConfig().module_patterns)}
    assert kinds == {"conv1d"}
    names = [lay.name for lay in find_watched_layers(tiny_llama(), ProjectionConfig().module_patterns)]
    assert {n.rsplit(".", 1)[-1] for n in names} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert len(names) == 14


def test_padding_does_not_change_a_sample_gradient() -> None:
    model = tiny_gpt2()
    proj = build_projection(model, ProjectionConfig(rank_in=8, rank_out=8, seed=0))
    comp = LoGraGradientComputer(model, proj, output_dtype=torch.float64)
    batch = padded_batch([7, 12])
    both = comp.compute(batch).grads
    alone = comp.compute(TokenBatch(batch.input_ids[:1, :7], batch.attention_mask[:1, :7],
                                    batch.loss_mask[:1, :7])).grads
    assert rel_err(both[0], alone[0]) < 1e-10


def test_fully_masked_sample_has_zero_gradient() -> None:
    model = tiny_llama()
    proj = build_projection(model, ProjectionConfig(rank_in=4, rank_out=4))
    batch = padded_batch([6, 6], prompt_tokens=[10, 1])
    out = LoGraGradientComputer(model, proj, output_dtype=torch.float64).compute(batch)
    assert float(out.grads[0].abs().max()) == 0.0
    assert float(out.grads[1].abs().max()) > 0.0
    assert float(out.losses[0]) == 0.0


def test_vmap_oracle_agrees_with_loop_oracle() -> None:
    model = tiny_gpt2()
    proj = build_projection(model, ProjectionConfig(rank_in=8, rank_out=8))
    batch = padded_batch([10, 4, 7])
    names = parameter_names_of_layers(proj)
    loop = per_sample_gradients_loop(model, batch, names)
    vm = per_sample_gradients_vmap(model, batch, names)
    for n in names:
        assert rel_err(vm[n], loop[n]) < 1e-8


def test_no_parameter_gradient_is_accumulated() -> None:
    model = tiny_gpt2()
    model.requires_grad_(True)  # even when the caller left parameters trainable
    proj = build_projection(model, ProjectionConfig(rank_in=4, rank_out=4))
    LoGraGradientComputer(model, proj, output_dtype=torch.float64).compute(padded_batch([5, 8]))
    assert all(p.grad is None for p in model.parameters())


def test_hooks_are_removed_after_compute() -> None:
    model = tiny_gpt2()
    proj = build_projection(model, ProjectionConfig(rank_in=4, rank_out=4))
    LoGraGradientComputer(model, proj).compute(padded_batch([5, 8]))
    assert all(not m._forward_hooks for m in model.modules())


# --- the random projector ---------------------------------------------------------------------------


def test_projection_is_seeded_and_per_layer_independent() -> None:
    model = tiny_gpt2()
    a = build_projection(model, ProjectionConfig(rank_in=8, rank_out=8, seed=5))
    b = build_projection(model, ProjectionConfig(rank_in=8, rank_out=8, seed=5))
    c = build_projection(model, ProjectionConfig(rank_in=8, rank_out=8, seed=6))
    only_fc = build_projection(model, ProjectionConfig(rank_in=8, rank_out=8, seed=5, module_patterns=("*.mlp.c_fc",)))
    assert a.digest() == b.digest()
    for la, lb, lc in zip(a.layers, b.layers, c.layers, strict=True):
        assert torch.equal(la.dense_in(), lb.dense_in())
        assert not torch.equal(la.dense_in(), lc.dense_in())
    fc = {lp.layer.name: lp for lp in a.layers}
    for lp in only_fc.layers:
        assert torch.equal(lp.dense_out(), fc[lp.layer.name].dense_out())


def test_projection_preserves_norms_in_expectation() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, generator=gen)
    ratios = []
    for seed in range(40):
        cfg = ProjectionConfig(rank_in=64, rank_out=64, seed=seed, module_patterns=("*.mlp.c_fc",))
        from marketplace.valuation.projection import _gaussian, _layer_seed

        p = _gaussian(_layer_seed(cfg.seed, "l", "in", 64, 512), 64, 512)
        ratios.append(float((p @ x).norm() ** 2 / x.norm() ** 2))
    mean = sum(ratios) / len(ratios)
    assert 0.9 < mean < 1.1  # E‖Px‖² = ‖x‖²; 40 draws of a χ²_64/64 average to within ~±5 %


def test_full_rank_side_is_identity_and_ranks_are_capped() -> None:
    model = tiny_gpt2()  # n_embd 24: c_attn 24 → 72
    proj = build_projection(model, ProjectionConfig(rank_in=64, rank_out=16))
    lp = next(lp for lp in proj.layers if lp.layer.name.endswith("attn.c_attn"))
    assert (lp.rank_in, lp.rank_out) == (24, 16)
    assert lp.p_in is None and lp.p_out is not None


def test_projection_save_load_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_llama()
    proj = build_projection(model, ProjectionConfig(rank_in=8, rank_out=8, seed=2))
    proj.save(tmp_path / "p.safetensors")
    back = Projection.load(tmp_path / "p.safetensors", expected_config=proj.config)
    assert back.digest() == proj.digest()
    for x, y in zip(back.layers, proj.layers, strict=True):
        assert torch.equal(x.dense_in(), y.dense_in()) and torch.equal(x.dense_out(), y.dense_out())
    from marketplace.errors import ManifestMismatchError

    with pytest.raises(ManifestMismatchError, match="config hash"):
        Projection.load(tmp_path / "p.safetensors", expected_config=ProjectionConfig(seed=9))


def test_no_matching_layer_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no linear layer"):
        build_projection(tiny_gpt2(), ProjectionConfig(module_patterns=("*.nothing",)))
