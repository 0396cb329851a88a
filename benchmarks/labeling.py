"""Labeling throughput and memory: LoGra vs a plain training step vs exact per-sample gradients.

For the demo target model and a model ≥ 4× larger (more layers and width, random init — speed does
not depend on the weights), over the *same* batches of real text:

  (a)  LoGra labeling: projected per-sample gradients (default ranks 64×64 per watched layer), one
       forward + one backward per batch, no parameter gradients;
  (b)  the floor: a plain training forward + backward (parameter .grad accumulated) on the batch;
  (b') forward + backward to the inputs only, no hooks: what (a) costs without the projections;
  (c)  the naive baseline: exact per-sample gradients of the watched weights (torch.func vmap(grad))
       followed by a dense Gaussian projection of each layer's flattened gradient to the same
       r_out·r_in dimensions (block-diagonal; the matrices — n_out·n_in × 4096 per layer, 12.9 GB for
       the demo model — cannot be stored, so they are regenerated per batch from a seeded generator,
       as TRAK's projector does; the report splits grad and projection time).

Memory: torch's CPU allocator is invisible to tracemalloc, so every (method, model) runs in a fresh
subprocess and reports ru_maxrss (peak resident set) after setup and after the method; "peak Δ" is
the difference, i.e. the extra memory the method needed on top of model + data. With ``--device cuda``
the same columns hold torch's CUDA allocator instead (allocated after setup, peak allocated during the
method), and every timed call ends with ``torch.cuda.synchronize()`` before the clock is read.

Run:  python benchmarks/labeling.py [--model-dir DIR] [--batches 8] [--batch-size 8] [--threads 2] [--device cpu]
Writes benchmarks/results/labeling.md (benchmarks/results/gpu_check.md records a CUDA run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, publish_report

NAIVE_CHUNK_ROWS = 16384  # rows of the dense projection generated at a time (16384 × 4096 × 4 B = 256 MiB)
METHODS = ("logra", "train_step", "input_grad_only", "naive")
LABELS = {
    "logra": "(a) LoGra labeling",
    "train_step": "(b) training fwd+bwd (floor)",
    "input_grad_only": "(b') fwd+bwd to inputs, no hooks",
    "naive": "(c) vmap per-sample grads + dense proj.",
}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _texts(n: int, seed: int) -> list[str]:
    from marketplace.corpus import general_text

    paras = [p for p in general_text(2_000_000, seed=seed) if len(p) >= 500]
    if 0 < len(paras) < n:  # a machine with few text sources (no Debian dictionaries): repeat, speed is the same
        print(f"only {len(paras)} texts of >= 500 chars; repeating them to {n}", file=sys.stderr)
        paras = paras * -(-n // len(paras))
    return paras[:n]


def _device_type(device: str) -> str:
    import torch

    return torch.device(device).type


def _sync_for(device: str):  # type: ignore[no-untyped-def]
    """What makes a timing honest on ``device``: CUDA kernels run asynchronously until synchronised."""
    import torch

    if _device_type(device) == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def build_large_model(demo_dir: Path, out: Path) -> Path:
    """A GPT-2 with 8 blocks of width 256 (≈ 4.5× the demo's parameters), demo tokenizer, random init."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    if (out / "config.json").exists():
        return out
    tok = AutoTokenizer.from_pretrained(demo_dir, local_files_only=True)
    cfg = GPT2Config(n_layer=8, n_embd=256, n_head=8, n_positions=256, vocab_size=len(tok), resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # benchmark script, not library code
        model = GPT2LMHeadModel(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _setup(model_dir: str, n_batches: int, batch_size: int, max_length: int, threads: int,
           device: str = "cpu") -> tuple:  # type: ignore[type-arg]
    import torch

    torch.set_num_threads(threads)
    from marketplace.valuation.config import ProjectionConfig
    from marketplace.valuation.projection import build_projection
    from marketplace.valuation.target_model import load_target_model
    from marketplace.valuation.tokenization import encode_texts

    target = load_target_model(model_dir, device=device)
    texts = _texts(n_batches * batch_size, seed=11)
    enc = encode_texts(target.tokenizer, texts, None, max_length=max_length)
    batches = [enc.batch(range(i, i + batch_size)).to(target.device) for i in range(0, len(texts), batch_size)]
    tokens_per_sample = float(enc.lengths.mean())
    return target.model, build_projection(target.model, ProjectionConfig()), batches, tokens_per_sample


def _methods(model, projection, extra: dict[str, float], sync=lambda: None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """name → run(batch): the four ways of getting (projected) gradients out of one batch."""
    import torch

    from marketplace.valuation.exact import parameter_names_of_layers, per_sample_gradients_vmap
    from marketplace.valuation.logra import LoGraGradientComputer
    from marketplace.valuation.tokenization import per_sample_loss

    comp = LoGraGradientComputer(model, projection)
    emb = model.get_input_embeddings()
    names = parameter_names_of_layers(projection)
    device = next(model.parameters()).device

    def logra(b):  # type: ignore[no-untyped-def]
        comp.compute(b)

    def train_step(b):  # type: ignore[no-untyped-def]
        model.requires_grad_(True)  # parameters trainable only for this method
        try:
            logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).logits
            per_sample_loss(logits, b.input_ids, b.loss_mask).sum().backward()
        finally:
            model.zero_grad(set_to_none=True)
            model.requires_grad_(False)

    def input_grad_only(b):  # type: ignore[no-untyped-def]
        leaf = emb(b.input_ids).detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(inputs_embeds=leaf, attention_mask=b.attention_mask, use_cache=False).logits
            torch.autograd.grad(per_sample_loss(logits, b.input_ids, b.loss_mask).sum(), [leaf])

    def naive(b):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        grads = per_sample_gradients_vmap(model, b, names)  # name → (B, *weight.shape)
        sync()
        t1 = time.perf_counter()
        gen = torch.Generator(device=device).manual_seed(0)
        parts = []
        for lp in projection.layers:
            flat = grads[f"{lp.layer.name}.weight"].flatten(1)  # (B, n_in·n_out)
            if lp.bias:
                flat = torch.cat([flat, grads[f"{lp.layer.name}.bias"]], dim=1)  # (B, n_in·n_out + n_out)
            out = torch.zeros(flat.shape[0], lp.dim, device=device)
            for start in range(0, flat.shape[1], NAIVE_CHUNK_ROWS):  # (chunk, r·r) blocks of the dense matrix
                stop = min(start + NAIVE_CHUNK_ROWS, flat.shape[1])
                dense = torch.randn(stop - start, lp.dim, generator=gen, device=device) / lp.dim**0.5
                out += flat[:, start:stop] @ dense
            parts.append(out)
        torch.cat(parts, dim=1)  # (B, D)
        sync()
        extra["grad_s"] = extra.get("grad_s", 0.0) + t1 - t0
        extra["proj_s"] = extra.get("proj_s", 0.0) + time.perf_counter() - t1

    return {"logra": logra, "train_step": train_step, "input_grad_only": input_grad_only, "naive": naive}


def memory_worker(method: str, model_dir: str, batch_size: int, max_length: int, threads: int,
                  device: str = "cpu") -> dict[str, float]:
    """Fresh process: peak RSS of one method over 3 batches (after a warm-up) above the setup's peak.
    On CUDA: torch's allocated memory after setup and its peak while the method runs."""
    model, projection, batches, _ = _setup(model_dir, 4 if method != "naive" else 2, batch_size, max_length,
                                           threads, device)
    run = _methods(model, projection, {}, _sync_for(device))[method]
    if _device_type(device) == "cuda":
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) / 2**20
        for b in batches:
            run(b)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        return {"base_rss_mb": base, "peak_rss_mb": peak, "peak_delta_mb": max(0.0, peak - base)}
    base = _maxrss_mb()
    for b in batches:
        run(b)
    return {"base_rss_mb": base, "peak_rss_mb": _maxrss_mb(), "peak_delta_mb": max(0.0, _maxrss_mb() - base)}


def speed_worker(model_dir: str, n_batches: int, naive_batches: int, batch_size: int, max_length: int,
                 threads: int, device: str = "cpu") -> dict[str, float]:
    """One process, methods interleaved batch by batch so that load drifts on a shared machine hit all
    of them alike; per-method median batch time. (c) is timed against LoGra on the same batches."""
    import statistics

    model, projection, batches, tokens_per_sample = _setup(model_dir, n_batches, batch_size, max_length, threads,
                                                           device)
    extra: dict[str, float] = {}
    sync = _sync_for(device)
    methods = _methods(model, projection, extra, sync)
    fast = ("logra", "train_step", "input_grad_only")
    for name in fast:
        methods[name](batches[0])  # warm-up
    sync()
    times: dict[str, list[float]] = {name: [] for name in fast}
    for b in batches[1:]:
        for name in fast:
            t0 = time.perf_counter()
            methods[name](b)
            sync()
            times[name].append(time.perf_counter() - t0)
    naive_t, adjacent_logra = [], []
    for b in batches[1 : naive_batches + 1]:
        for name, sink in (("logra", adjacent_logra), ("naive", naive_t), ("logra", adjacent_logra)):
            t0 = time.perf_counter()
            methods[name](b)
            sync()
            sink.append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    n_naive = max(1, len(naive_t)) * batch_size
    return {
        **{f"{name}_samples_per_s": batch_size / med[name] for name in fast},
        "naive_samples_per_s": batch_size / statistics.median(naive_t),
        "naive_vs_adjacent_logra": statistics.median(naive_t) / statistics.median(adjacent_logra),
        "naive_grad_ms": 1e3 * extra.get("grad_s", 0.0) / n_naive,
        "naive_proj_ms": 1e3 * extra.get("proj_s", 0.0) / n_naive,
        "tokens_per_sample": tokens_per_sample,
        "n_params": float(sum(p.numel() for p in model.parameters())),
        "projected_dim": float(projection.dim),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None, help="Demo model folder (built if missing).")
    ap.add_argument("--large-dir", type=Path, default=None, help="Where to save the larger model.")
    ap.add_argument("--batches", type=int, default=8, help="Timed batches per method (plus one warm-up).")
    ap.add_argument("--naive-batches", type=int, default=2, help="Timed batches for the slow baseline (c).")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device of the workers: cpu (default), cuda or cuda:N.")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "labeling.md")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        kind, model_dir = args.worker.split("@", 1)
        if kind == "speed":
            out = speed_worker(model_dir, args.batches + 1, args.naive_batches, args.batch_size, args.max_length,
                               args.threads, args.device)
        else:
            out = memory_worker(kind.removeprefix("memory:"), model_dir, args.batch_size, args.max_length,
                                args.threads, args.device)
        print(json.dumps(out))
        return

    from marketplace.settings import get_settings
    from marketplace.valuation.demo_model import build_demo_model

    models_dir = get_settings().resolved_models_dir
    demo_dir = args.model_dir or models_dir / "demo-gpt2-seed0"
    if not (demo_dir / "config.json").exists():
        print(f"building the demo model in {demo_dir} (a few minutes)...", file=sys.stderr)
        build_demo_model(demo_dir, seed=0)
    large_dir = build_large_model(demo_dir, args.large_dir or models_dir / "bench-gpt2-8x256-random")

    def run_worker(kind: str, mdir: Path) -> dict[str, float]:
        cmd = [sys.executable, __file__, "--worker", f"{kind}@{mdir}", "--batches", str(args.batches),
               "--naive-batches", str(args.naive_batches), "--batch-size", str(args.batch_size),
               "--max-length", str(args.max_length), "--threads", str(args.threads), "--device", args.device]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"worker {kind}@{mdir} failed")
        result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, mdir in (("demo", demo_dir), ("large", large_dir)):
        print(f"[{label}] speed (methods interleaved) ...", file=sys.stderr, flush=True)
        speed = run_worker("speed", mdir)
        results[label] = {}
        for method in METHODS:
            print(f"[{label}] memory of {LABELS[method]} ...", file=sys.stderr, flush=True)
            results[label][method] = {"samples_per_s": speed[f"{method}_samples_per_s"],
                                      **run_worker(f"memory:{method}", mdir)}
        results[label]["_speed"] = speed

    on_cuda = _device_type(args.device) == "cuda"
    if on_cuda:
        import torch

        where = (f"{torch.cuda.get_device_name(args.device)} ({args.device}, torch {torch.__version__}), "
                 "float32, timings synchronised")
        rss, rss_note = "CUDA", ("CUDA memory: peak Δ = torch.cuda.max_memory_allocated during 3 batches − "
                                 "memory_allocated after setup (model + data).")
    else:
        where = "CPU only"
        rss, rss_note = "RSS", ("peak Δ = ru_maxrss after 3 batches − ru_maxrss after setup (model + data).")
    lines = [
        "# Labeling throughput and memory (benchmarks/labeling.py)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch threads = "
        f"{args.threads}, {where}. Batches of {args.batch_size} real-text samples truncated to {args.max_length} "
        f"tokens; {args.batches} timed batches per method ({args.naive_batches} for (c)) after one warm-up. "
        "Speed: one process per model, the methods interleaved batch by batch (the machine is shared, so load "
        "drifts hit every method alike), median batch time. Memory: one fresh subprocess per (method, model), "
        f"{rss_note}",
        "",
    ]
    for label, rows in results.items():
        sp = rows["_speed"]
        lines += [
            f"## {label} model: {sp['n_params'] / 1e6:.2f} M parameters, projected dim D = "
            f"{int(sp['projected_dim'])}, {sp['tokens_per_sample']:.0f} tokens/sample",
            "",
            f"| method | samples/s | × floor (b) | peak {rss} MB | peak Δ MB |",
            "|---|---:|---:|---:|---:|",
        ]
        floor = rows["train_step"]["samples_per_s"]
        for method in METHODS:
            r = rows[method]
            lines.append(f"| {LABELS[method]} | {r['samples_per_s']:.2f} | {r['samples_per_s'] / floor:.2f} | "
                         f"{r['peak_rss_mb']:.0f} | {r['peak_delta_mb']:.0f} |")
        lines += [
            "",
            f"(c) per sample: exact gradients {sp['naive_grad_ms']:.0f} ms + dense projection "
            f"{sp['naive_proj_ms']:.0f} ms. Timed right next to LoGra on the same batches, (c) takes "
            f"{sp['naive_vs_adjacent_logra']:.0f}× as long; LoGra runs at "
            f"{rows['logra']['samples_per_s'] / floor:.2f}× the training floor.",
            "",
        ]
    large = results["large"]
    goal_speed = large["logra"]["samples_per_s"] >= 0.7 * large["train_step"]["samples_per_s"]
    goal_naive = large["_speed"]["naive_vs_adjacent_logra"] >= 10
    demo_speed = results["demo"]["logra"]["samples_per_s"] >= 0.7 * results["demo"]["train_step"]["samples_per_s"]
    lines += [
        "## Goals",
        "",
        f"- (a) ≥ 0.7× speed of (b): demo {'met' if demo_speed else 'NOT met'}, large "
        f"{'met' if goal_speed else 'NOT met'}",
        f"- (a) ≥ 10× faster than (c) on the larger model: {'met' if goal_naive else 'NOT met'}",
        f"- peak memory of (a) vs (b) (Δ over setup): demo {results['demo']['logra']['peak_delta_mb']:.0f} vs "
        f"{results['demo']['train_step']['peak_delta_mb']:.0f} MB, large {large['logra']['peak_delta_mb']:.0f} vs "
        f"{large['train_step']['peak_delta_mb']:.0f} MB",
        "",
    ]
    publish_report(lines, args.out)


if __name__ == "__main__":
    main()
