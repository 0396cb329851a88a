"""The valuation path on a CUDA device: CUDA against CPU in float32, and LoGra against the exact oracle there.

CI has no GPU, so every test here is skipped without one. benchmarks/results/gpu_check.md records the
last run on a GPU machine: the command, the pass count and the deviations measured (each test also
stores its own as a junit ``record_property``, so ``--junitxml`` keeps the numbers).

What runs on the device: LoGra hooks (float32 against the CPU, float64 against exact per-sample
gradients computed there too), LinFiK queries and scores (built from CUDA gradients on the CPU, as the
label flow does, and on CUDA tensors directly), target-model loading with ``device="cuda:0"``, the two
shard steps of a label run (``compute_target_shards`` / ``compute_train_shard``) on a run folder
written by hand (no database), and the LinFiK quality evaluation.

Float32 tolerances assume IEEE float32 matmuls (PyTorch's default; TF32 off). CUDA and CPU sum in
different orders, so agreement is to ~1e-6 relative, not bit-for-bit; 1e-4 leaves room for other GPUs.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from marketplace.valuation.config import LinFiKConfig, Preconditioner, ProjectionConfig
from marketplace.valuation.exact import (
    parameter_names_of_layers,
    per_sample_gradients_loop,
    per_sample_gradients_vmap,
    project_exact_gradients,
)
from marketplace.valuation.gradients import (
    compute_target_shards,
    compute_train_shard,
    load_or_build_projection,
    open_store,
)
from marketplace.valuation.linfik import build_query, score_against_query
from marketplace.valuation.logra import KFACStats, LoGraGradientComputer
from marketplace.valuation.projection import Projection, build_projection
from marketplace.valuation.quality import evaluate_linfik_quality
from marketplace.valuation.runs import CheckpointRef, LabelRunPlan
from marketplace.valuation.target_model import load_target_model, load_target_model_cached
from tests.support.models import build_tiny_model, texts
from tests.support.tiny_models import MODELS, padded_batch, rel_err

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device (CI has none; run on a GPU machine: see benchmarks/results/gpu_check.md)",
)

CUDA = torch.device("cuda:0")
FLOAT32_RTOL = 1e-4  # CUDA vs CPU, float32 (measured ~1e-6 on an H100)
LENGTHS = [12, 5, 9, 12, 3]
PROMPTS = [4, 2, 6, 1, 1]


def _pair(arch: str, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same tiny model on the CPU and on CUDA, in ``dtype``."""
    cpu = MODELS[arch]().to(dtype)
    return cpu, copy.deepcopy(cpu).to(CUDA)


def _max_row_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return max(rel_err(a[i], b[i]) for i in range(b.shape[0]))


def _scale_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: for score vectors, where one near-zero entry would blow up a relative error."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def _kfac_on(stats: KFACStats, device: torch.device) -> KFACStats:
    return KFACStats({k: v.to(device) for k, v in stats.a_sum.items()},
                     {k: v.to(device) for k, v in stats.s_sum.items()}, stats.n_tokens, stats.n_samples)


# --- (a) LoGra on CUDA against LoGra on the CPU, float32 ----------------------------------------------


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("prompt", [False, True], ids=["plain", "prompt-masked"])
def test_logra_on_cuda_matches_cpu_in_float32(arch: str, prompt: bool, record_property) -> None:  # type: ignore[no-untyped-def]
    cpu, gpu = _pair(arch, torch.float32)
    proj = build_projection(cpu, ProjectionConfig(rank_in=8, rank_out=6, seed=3))
    assert build_projection(gpu, ProjectionConfig(rank_in=8, rank_out=6, seed=3)).digest() == proj.digest()
    batch = padded_batch(LENGTHS, prompt_tokens=PROMPTS if prompt else None)
    want = LoGraGradientComputer(cpu, proj, collect_kfac=True).compute(batch)
    got = LoGraGradientComputer(gpu, proj, collect_kfac=True).compute(batch)  # moves the batch itself
    assert got.grads.device.type == "cpu" and got.grads.dtype == torch.float32  # returned on the CPU, as documented
    assert got.grads.shape == want.grads.shape == (len(LENGTHS), proj.dim)

    row_err = _max_row_rel_err(got.grads, want.grads)
    cosine = float(torch.nn.functional.cosine_similarity(got.grads.double(), want.grads.double(), dim=1).min())
    loss_err = rel_err(got.losses, want.losses)
    assert got.kfac is not None and want.kfac is not None
    kfac_err = max(rel_err(got.kfac.a_sum[n], want.kfac.a_sum[n]) for n in want.kfac.a_sum)
    kfac_err = max(kfac_err, *(rel_err(got.kfac.s_sum[n], want.kfac.s_sum[n]) for n in want.kfac.s_sum))
    for name, value in {"grad_row_rel_err_max": row_err, "grad_cosine_min": cosine, "loss_rel_err": loss_err,
                        "kfac_rel_err_max": kfac_err}.items():
        record_property(name, value)
    assert row_err < FLOAT32_RTOL  # per sample: a mixed-up row would hide in a global norm
    assert cosine > 1 - 1e-6
    assert loss_err < 1e-5
    assert kfac_err < FLOAT32_RTOL
    assert (got.kfac.n_tokens, got.kfac.n_samples) == (want.kfac.n_tokens, want.kfac.n_samples)
    assert float(want.grads.norm()) > 1e-3  # not trivially zero


def test_no_parameter_gradient_and_no_hook_is_left_on_cuda() -> None:
    _, gpu = _pair("gpt2-conv1d", torch.float32)
    gpu.requires_grad_(True)
    proj = build_projection(gpu, ProjectionConfig(rank_in=4, rank_out=4))
    LoGraGradientComputer(gpu, proj).compute(padded_batch([5, 8]))
    assert all(p.grad is None for p in gpu.parameters())
    assert all(not m._forward_hooks for m in gpu.modules())


# --- (b) LoGra on CUDA against exact per-sample gradients on CUDA, float64 ---------------------------


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("prompt", [False, True], ids=["plain", "prompt-masked"])
def test_logra_on_cuda_equals_projected_exact_gradients(arch: str, prompt: bool, record_property) -> None:  # type: ignore[no-untyped-def]
    _, gpu = _pair(arch, torch.float64)
    proj = build_projection(gpu, ProjectionConfig(rank_in=8, rank_out=6, seed=3))
    batch = padded_batch(LENGTHS, prompt_tokens=PROMPTS if prompt else None)
    fast = LoGraGradientComputer(gpu, proj, output_dtype=torch.float64).compute(batch).grads

    exact = per_sample_gradients_loop(gpu, batch.to(CUDA), parameter_names_of_layers(proj))  # the oracle
    assert all(g.device == CUDA for g in exact.values())  # does not move the batch: the caller does
    slow = project_exact_gradients(exact, proj).cpu()
    assert fast.dtype == slow.dtype == torch.float64
    err = _max_row_rel_err(fast, slow)
    record_property("logra_vs_exact_row_rel_err_max", err)
    assert err < 1e-4  # the CPU test's bound (tests/valuation/test_logra.py)
    assert float(slow.norm()) > 1e-3


def test_vmap_oracle_on_cuda_agrees_with_loop_oracle(record_property) -> None:  # type: ignore[no-untyped-def]
    _, gpu = _pair("gpt2-conv1d", torch.float64)
    proj = build_projection(gpu, ProjectionConfig(rank_in=8, rank_out=8))
    batch = padded_batch([10, 4, 7]).to(CUDA)
    names = parameter_names_of_layers(proj)
    loop = per_sample_gradients_loop(gpu, batch, names)
    vm = per_sample_gradients_vmap(gpu, batch, names)
    err = max(rel_err(vm[n], loop[n]) for n in names)
    record_property("vmap_vs_loop_rel_err_max", err)
    assert err < 1e-8


# --- (c) LinFiK from CUDA gradients against LinFiK from CPU gradients --------------------------------


def _linfik_inputs(model: torch.nn.Module, proj: Projection) -> tuple[torch.Tensor, torch.Tensor, KFACStats]:
    """(target mean (D,), train gradients (N, D), train K-FAC sums) from LoGra, as the label flow forms them."""
    target = padded_batch([9, 6, 11], seed=7)
    train = padded_batch([12, 4, 8, 10, 7, 12], prompt_tokens=[3, 1, 2, 1, 5, 1], seed=8)
    g_target = LoGraGradientComputer(model, proj).compute(target).grads
    out = LoGraGradientComputer(model, proj, collect_kfac=True).compute(train)
    assert out.kfac is not None
    return g_target.double().mean(dim=0), out.grads, out.kfac


def _scores(proj: Projection, mean: torch.Tensor, grads: torch.Tensor, kfac: KFACStats,
            preconditioner: Preconditioner, cosine: bool) -> torch.Tensor:
    def gram(_idx: int, sl: slice) -> tuple[torch.Tensor, int]:
        block = grads[:, sl].double()
        return block.T @ block, block.shape[0]

    query = build_query(mean, proj, eta=1e-3, preconditioner=preconditioner, gram=gram, kfac=kfac)
    assert query.vector.device == mean.device
    return score_against_query(grads, query, cosine=cosine)


@pytest.mark.parametrize("preconditioner", ["identity", "fisher", "kfac"])
@pytest.mark.parametrize("cosine", [False, True], ids=["dot", "cosine"])
def test_linfik_scores_from_cuda_gradients_match_cpu(preconditioner: Preconditioner, cosine: bool,
                                                      record_property) -> None:  # type: ignore[no-untyped-def]
    cpu, gpu = _pair("llama-linear", torch.float32)
    proj = build_projection(cpu, ProjectionConfig(rank_in=8, rank_out=6, seed=1))
    want = _scores(proj, *_linfik_inputs(cpu, proj), preconditioner, cosine)
    from_gpu = _linfik_inputs(gpu, proj)  # gradients computed on CUDA, returned on the CPU
    got = _scores(proj, *from_gpu, preconditioner, cosine)
    # the LinFiK algebra itself on CUDA tensors (the label flow keeps it on the CPU, but nothing requires that)
    mean, grads, kfac = from_gpu
    on_device = _scores(proj, mean.to(CUDA), grads.to(CUDA), _kfac_on(kfac, CUDA), preconditioner, cosine)
    assert on_device.device == CUDA
    err, err_device = _scale_err(got, want), _scale_err(on_device.cpu(), got)
    record_property("score_scale_err", err)
    record_property("score_scale_err_linfik_on_cuda", err_device)
    assert err < FLOAT32_RTOL
    assert err_device < 1e-5
    assert float(want.abs().max()) > 0


# --- (d) target model, label-run shard steps and quality evaluation with device="cuda:0" ------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("cuda-models"))


def test_load_target_model_on_cuda(model_dir: Path) -> None:
    on_cpu = load_target_model(model_dir)
    target = load_target_model(model_dir, device="cuda:0")
    assert target.device == CUDA and target.dtype == torch.float32
    assert all(p.device == CUDA and not p.requires_grad for p in target.model.parameters())
    assert all(b.device == CUDA for b in target.model.buffers())
    assert target.digest == on_cpu.digest and not target.model.training
    cached = load_target_model_cached(model_dir, device="cuda:0")
    assert cached is load_target_model_cached(model_dir, device=CUDA)  # "cuda:0" and torch.device: one entry
    assert next(cached.model.parameters()).device == CUDA
    assert next(load_target_model_cached(model_dir).model.parameters()).device.type == "cpu"


def _write_run(run_dir: Path, model_dir: Path, config: LinFiKConfig, shard_size: int) -> LabelRunPlan:
    """The run folder ``plan_label_run`` would leave (samples/target Parquet, one row group per shard),
    written by hand: the shard steps read only the folder, never the database."""
    pool = texts(23)
    train_texts, target_texts = pool[:18], pool[18:]
    prompt_chars = [40 if i % 4 == 0 else None for i in range(len(train_texts))]  # every 4th prompt/response
    run_dir.mkdir(parents=True)
    pq.write_table(pa.table({
        "sample_id": pa.array(range(1, len(train_texts) + 1), pa.int64()),
        "text": pa.array(train_texts, pa.large_string()),
        "prompt_chars": pa.array(prompt_chars, pa.int64()),
    }), run_dir / "samples.parquet", row_group_size=shard_size)
    pq.write_table(pa.table({
        "target_id": pa.array(range(1, len(target_texts) + 1), pa.int64()),
        "text": pa.array(target_texts, pa.large_string()),
        "prompt_chars": pa.array([None] * len(target_texts), pa.int64()),
    }), run_dir / "target.parquet", row_group_size=shard_size)
    n_train, n_target = len(train_texts), len(target_texts)
    return LabelRunPlan(
        run_dir=str(run_dir), run_key="cuda-check", campaign_id=1, label_set_id=1, already_complete=False,
        n_requested=n_train, n_samples=n_train, n_target=n_target, shard_size=shard_size,
        n_train_shards=-(-n_train // shard_size), n_target_shards=-(-n_target // shard_size),
        config=config.summary(), config_hash=config.config_hash(),
        checkpoints=(CheckpointRef(path=str(model_dir), digest=load_target_model(model_dir).digest, eta=config.eta),),
        sample_data_digest="s" * 64, target_data_digest="t" * 64,
    )


def _label_scores(plan: LabelRunPlan, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Both shard steps on ``device``, then the query and scores from the stores as score_label_run forms them."""
    compute_target_shards(plan, 0, device=device, batch_size=4)
    for s in range(plan.n_train_shards):
        assert compute_train_shard(plan, 0, s, device=device, batch_size=4).computed
    config = plan.linfik_config
    target = load_target_model_cached(plan.checkpoints[0].path, device=device)
    proj = load_or_build_projection(plan, 0, target)
    train, target_store = open_store(plan, 0, "train", proj), open_store(plan, 0, "target", proj)
    query = build_query(target_store.mean_gradient(), proj, eta=config.eta, preconditioner=config.preconditioner,
                        damping_ratio=config.damping_ratio, kfac=train.kfac_stats())
    grads = torch.cat([train.read_shard(s).grads for s in range(train.n_shards)])
    losses = torch.cat([train.read_shard(s).losses for s in range(train.n_shards)])
    return grads, losses, score_against_query(grads, query), proj.digest()


def test_label_run_shards_on_cuda_match_cpu(model_dir: Path, tmp_path: Path, record_property) -> None:  # type: ignore[no-untyped-def]
    config = LinFiKConfig(projection=ProjectionConfig(rank_in=8, rank_out=8), preconditioner="kfac", max_length=48,
                          weighting="sample", reference="none", cosine=False)
    g_cpu, l_cpu, s_cpu, d_cpu = _label_scores(_write_run(tmp_path / "cpu", model_dir, config, 8), "cpu")
    g_gpu, l_gpu, s_gpu, d_gpu = _label_scores(_write_run(tmp_path / "cuda", model_dir, config, 8), "cuda:0")
    assert d_cpu == d_gpu  # the projection is drawn on the CPU whatever the model's device
    assert g_gpu.shape == g_cpu.shape == (18, g_cpu.shape[1])
    errs = {"grad_row_rel_err_max": _max_row_rel_err(g_gpu, g_cpu), "loss_rel_err": rel_err(l_gpu, l_cpu),
            "kfac_score_scale_err": _scale_err(s_gpu, s_cpu)}
    for name, value in errs.items():
        record_property(name, value)
    assert errs["grad_row_rel_err_max"] < FLOAT32_RTOL
    assert errs["loss_rel_err"] < 1e-5
    assert errs["kfac_score_scale_err"] < FLOAT32_RTOL


def test_linfik_quality_evaluation_on_cuda_matches_cpu(model_dir: Path, record_property) -> None:  # type: ignore[no-untyped-def]
    pool = texts(16, seed=3, max_chars=160)
    kwargs = {"projection_config": ProjectionConfig(rank_in=8, rank_out=8), "max_length": 32, "batch_size": 4,
              "drop_scopes": ("all",)}
    want = evaluate_linfik_quality(load_target_model(model_dir), pool[:12], pool[12:], **kwargs)  # type: ignore[arg-type]
    got = evaluate_linfik_quality(load_target_model(model_dir, device="cuda:0"), pool[:12], pool[12:],
                                  **kwargs)  # type: ignore[arg-type]
    assert got.scores.keys() == want.scores.keys()
    for key in want.scores:
        err = _scale_err(torch.tensor(got.scores[key], dtype=torch.float64),
                         torch.tensor(want.scores[key], dtype=torch.float64))
        record_property(f"{key}_scale_err", err)
        # logra is float32; the exact gradients and the loss drops are float64
        assert err < (FLOAT32_RTOL if key == "logra" else 1e-8), key
