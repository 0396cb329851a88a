"""The demo target model: a small causal LM built from a config and briefly trained on local real text.

Steps (all deterministic for a seed on one machine):

1. text: :func:`marketplace.corpus.general_text` records of the default sources (each reads a fixed list
   of files; a missing one is named with the Debian package that installs it, in the log and the
   manifest's ``text_sources``);
2. tokenizer: byte-level BPE trained with ``tokenizers`` on that text, wrapped as a
   ``PreTrainedTokenizerFast`` (``<|endoftext|>`` is BOS, EOS, padding and unknown token);
3. model: GPT-2 (default; ``Conv1D`` layers) or Llama-style (``nn.Linear``) from a config, dropout 0,
   weights initialised from a seeded CPU ``torch.Generator`` (the global RNG is never seeded; model
   construction runs under ``fork_rng`` so the caller's RNG state is untouched);
4. training: AdamW with warm-up and cosine decay on random 128-token windows of the token stream
   (95 % train / 5 % held out), a fixed number of steps (never a wall-clock budget, which would break
   determinism);
5. ``save_pretrained`` of both, then ``demo_manifest.json`` last: a folder with a manifest whose
   config, seed and text digest match is reused as is (a second call returns in milliseconds).

A built model is never overwritten: campaigns pin its digest. A folder holding a model built from other
inputs is refused, and :func:`build_keyed_demo_model` (what ``marketplace demo`` uses) names the folder
after everything the model is built from (:func:`demo_model_key`: recipe version, config, seed and
training-text digest), so new inputs give a new folder beside the old one (docs/architecture.md,
"The demo's model and stores").
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from marketplace.corpus import general_text, model_text_sources
from marketplace.corpus.sources import TextSource
from marketplace.errors import ConfigError
from marketplace.valuation.config import stable_hash

__all__ = [
    "MANIFEST_NAME",
    "RECIPE_VERSION",
    "DemoModelConfig",
    "DemoModelResult",
    "build_demo_model",
    "build_keyed_demo_model",
    "demo_model_folder",
    "demo_model_key",
    "training_text",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "demo_manifest.json"
FORMAT = "marketplace-demo-model/1"
SPECIAL = "<|endoftext|>"
#: Bump when a change to this module makes the same config, seed and text give another model: the
#: keyed folder name changes with it, so models built by the old code are kept, not replaced.
RECIPE_VERSION = 1


class DemoModelConfig(BaseModel):
    """Architecture, data and training schedule of the demo model. ``train_steps`` sets the build time
    (≈ 0.23 s per step on 2 idle CPU cores at the defaults, where the 4,096-token output layer is about
    half of the work); tests pass a much smaller config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arch: Literal["gpt2", "llama"] = "gpt2"
    n_layer: int = Field(default=4, ge=1, le=64)
    d_model: int = Field(default=128, ge=8, le=8192)
    n_head: int = Field(default=4, ge=1, le=128)
    context: int = Field(default=256, ge=16, le=65536)
    vocab_size: int = Field(default=4096, ge=300, le=200_000)
    text_chars: int = Field(default=4_000_000, ge=10_000)
    train_steps: int = Field(default=200, ge=0)
    batch_size: int = Field(default=16, ge=1)
    seq_len: int = Field(default=128, ge=8)
    learning_rate: float = Field(default=3e-3, gt=0)
    warmup_steps: int = Field(default=20, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    init_std: float = Field(default=0.02, gt=0)

    def config_hash(self) -> str:
        return stable_hash(self.model_dump(mode="json"))


class DemoModelResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    cached: bool
    arch: str
    n_parameters: int
    text_digest: str
    initial_eval_loss: float
    final_eval_loss: float
    build_seconds: float
    manifest: dict[str, Any]
    #: per default source: name, whether it was read, and the Debian packages missing for it ([] when
    #: the caller gave the text)
    text_sources: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def missing_packages(self) -> list[str]:
        return sorted({p for s in self.text_sources for p in s["missing_packages"]})


def _train_tokenizer(paragraphs: list[str], vocab_size: int, context: int) -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(paragraphs, vocab_size=vocab_size, min_frequency=2, special_tokens=[SPECIAL],
                            show_progress=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token=SPECIAL, eos_token=SPECIAL, unk_token=SPECIAL, pad_token=SPECIAL,
        model_max_length=context,
    )


def _make_model(cfg: DemoModelConfig, vocab_size: int, eos_id: int) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    model: Any
    with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG; we re-init anyway
        if cfg.arch == "gpt2":
            model = GPT2LMHeadModel(GPT2Config(
                n_layer=cfg.n_layer, n_embd=cfg.d_model, n_head=cfg.n_head, n_positions=cfg.context,
                vocab_size=vocab_size, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
            ))
        else:
            model = LlamaForCausalLM(LlamaConfig(
                hidden_size=cfg.d_model, intermediate_size=(8 * cfg.d_model) // 3 // 8 * 8,
                num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
                num_key_value_heads=cfg.n_head, max_position_embeddings=cfg.context, vocab_size=vocab_size,
                tie_word_embeddings=True, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
            ))
    return model


def _init_weights(model: torch.nn.Module, n_layer: int, std: float, gen: torch.Generator) -> None:
    """GPT-2 style init from ``gen``: N(0, std) matrices (residual output projections std/√(2L)),
    zero biases, unit norm weights."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                scale = std / math.sqrt(2 * n_layer) if name.endswith(("c_proj.weight", "o_proj.weight",
                                                                       "down_proj.weight")) else std
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)


def _eval_loss(model: torch.nn.Module, stream: torch.Tensor, seq_len: int, n_windows: int = 16) -> float:
    starts = torch.linspace(0, len(stream) - seq_len - 1, n_windows).long()
    batch = torch.stack([stream[s : s + seq_len] for s in starts.tolist()])
    with torch.no_grad():
        out = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch, use_cache=False)
    return float(out.loss)


def _read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return data if data.get("format") == FORMAT else None


def _text_digest(paragraphs: list[str]) -> str:
    """sha256 over the training text, paragraph by paragraph (NUL-separated): the manifest's record of it."""
    h = hashlib.sha256()
    for para in paragraphs:
        h.update(para.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def training_text(cfg: DemoModelConfig, seed: int = 0,
                  sources: Sequence[TextSource] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """The demo model's training text (:func:`general_text` of ``sources``, default
    :func:`model_text_sources`) and, per source, whether it was read and which Debian packages it lacks."""
    chosen = list(sources if sources is not None else model_text_sources())
    info: list[dict[str, Any]] = [
        {"name": s.name, "available": s.available(), "missing_packages": s.missing()} for s in chosen
    ]
    for item in info:
        for package in item["missing_packages"]:
            log.warning("demo model text: source %s lacks files of the Debian package %s "
                        "(apt-get install %s adds them; the model is then built anew in its own folder)",
                        item["name"], package, package)
    return general_text(cfg.text_chars, seed=seed, sources=chosen), info


def demo_model_key(cfg: DemoModelConfig, seed: int, text_digest: str) -> str:
    """sha256 of everything a demo model is built from: recipe version, config, seed, training-text digest."""
    return stable_hash({"format": FORMAT, "recipe": RECIPE_VERSION, "config": cfg.model_dump(mode="json"),
                        "seed": seed, "text_digest": text_digest})


def demo_model_folder(models_dir: Path, cfg: DemoModelConfig, seed: int, text_digest: str) -> Path:
    """``MODELS_DIR/demo-<steps>steps-seed<seed>-<key12>``: one folder per set of inputs."""
    key = demo_model_key(cfg, seed, text_digest)
    return Path(models_dir).expanduser().resolve() / f"demo-{cfg.train_steps}steps-seed{seed}-{key[:12]}"


def build_keyed_demo_model(
    models_dir: Path, cfg: DemoModelConfig | None = None, *, seed: int = 0,
    sources: Sequence[TextSource] | None = None,
) -> DemoModelResult:
    """Build (or reuse) the demo model in :func:`demo_model_folder` under ``models_dir``: other inputs
    (a changed source, config or seed) build into a new folder; no built model is touched."""
    cfg = cfg or DemoModelConfig()
    paragraphs, info = training_text(cfg, seed, sources)
    out = demo_model_folder(models_dir, cfg, seed, _text_digest(paragraphs))
    return build_demo_model(out, cfg, seed=seed, paragraphs=paragraphs, text_sources=info)


def build_demo_model(
    out: Path, cfg: DemoModelConfig | None = None, *, seed: int = 0, paragraphs: list[str] | None = None,
    text_sources: list[dict[str, Any]] | None = None,
) -> DemoModelResult:
    """Build (or reuse) the demo target model in ``out``. CPU only; a few minutes at the defaults.

    ``paragraphs`` replaces :func:`training_text` as the training text (tests pass a small fixed text);
    ``text_sources`` is its description for the manifest. A folder holding a model built from other
    inputs is refused, never overwritten (:func:`build_keyed_demo_model` picks a folder per input).
    """
    cfg = cfg or DemoModelConfig()
    out = Path(out).expanduser().resolve()
    t0 = time.perf_counter()
    if paragraphs is None:
        paragraphs, text_sources = training_text(cfg, seed)
    text_sources = text_sources or []
    if not paragraphs:
        raise ConfigError("no general text available to train the demo model on; install the Debian packages "
                          "its sources name (marketplace corpus sources) or use a standard CPython build")
    digest = _text_digest(paragraphs)
    existing = _read_manifest(out)
    if existing and existing["config"] == cfg.model_dump(mode="json") and existing["seed"] == seed \
            and existing["text_digest"] == digest and (out / "config.json").exists():
        log.info("demo model in %s is up to date (config %s, seed %d): reused", out, cfg.config_hash()[:12], seed)
        return DemoModelResult(path=str(out), cached=True, arch=existing["config"]["arch"],
                               n_parameters=existing["n_parameters"], text_digest=digest,
                               initial_eval_loss=existing["initial_eval_loss"],
                               final_eval_loss=existing["final_eval_loss"],
                               build_seconds=time.perf_counter() - t0, manifest=existing,
                               text_sources=existing.get("text_sources", text_sources))
    if existing is not None:
        raise ConfigError(
            f"{out} holds a demo model built from other inputs (config {existing.get('config_hash', '?')[:12]}, "
            f"seed {existing.get('seed')}, text {str(existing.get('text_digest'))[:12]}; now config "
            f"{cfg.config_hash()[:12]}, seed {seed}, text {digest[:12]}); a built model is never overwritten "
            "(campaigns pin its digest): build into another folder")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a demo model folder; choose an empty or new folder")

    log.info("building demo model: %s, %d paragraphs (%d chars)", cfg.arch, len(paragraphs),
             sum(map(len, paragraphs)))
    tokenizer = _train_tokenizer(paragraphs, cfg.vocab_size, cfg.context)
    eos_id = int(tokenizer.convert_tokens_to_ids(SPECIAL))
    seq_len = min(cfg.seq_len, cfg.context)  # training windows never exceed the context
    train_stream, eval_stream = _token_streams(tokenizer, paragraphs, eos_id, seq_len)

    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    model = _make_model(cfg, len(tokenizer), eos_id)
    _init_weights(model, cfg.n_layer, cfg.init_std, gen)
    model.train()
    initial = _eval_loss(model, eval_stream, seq_len)
    losses = _train(model, train_stream, seq_len, cfg, gen)
    model.eval()
    final = _eval_loss(model, eval_stream, seq_len)
    n_params = sum(p.numel() for p in model.parameters())

    build_seconds = round(time.perf_counter() - t0, 2)
    manifest = {
        "format": FORMAT,
        "config": cfg.model_dump(mode="json"),
        "config_hash": cfg.config_hash(),
        "seed": seed,
        "text_digest": digest,
        "text_paragraphs": len(paragraphs),
        "text_sources": text_sources,
        "recipe": RECIPE_VERSION,
        "train_tokens": len(train_stream),
        "n_parameters": n_params,
        "initial_eval_loss": initial,
        "final_eval_loss": final,
        "train_loss_first_last": [losses[0], losses[-1]] if losses else [],
        "build_seconds": build_seconds,
    }
    _save(out, model, tokenizer, manifest)
    log.info("demo model saved to %s: %d parameters, held-out loss %.3f → %.3f", out, n_params, initial, final)
    return DemoModelResult(path=str(out), cached=False, arch=cfg.arch, n_parameters=n_params, text_digest=digest,
                           initial_eval_loss=initial, final_eval_loss=final,
                           build_seconds=build_seconds, manifest=manifest, text_sources=text_sources)


def _token_streams(tokenizer: Any, paragraphs: list[str], eos_id: int,
                   seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The text as one token stream (each paragraph followed by EOS), split into train and held-out
    (the last 5 %, at least 32 windows): two (T,) int64 tensors."""
    encodings = tokenizer.backend_tokenizer.encode_batch(paragraphs, add_special_tokens=False)
    stream_np = np.fromiter((t for enc in encodings for t in [*enc.ids, eos_id]), dtype=np.int64)
    stream = torch.from_numpy(stream_np)
    n_eval = max(seq_len * 32, len(stream) // 20)
    train_stream, eval_stream = stream[:-n_eval], stream[-n_eval:]
    if len(train_stream) <= seq_len + 1:
        raise ConfigError(f"only {len(stream)} tokens of text: raise text_chars or lower seq_len")
    return train_stream, eval_stream


def _train(model: Any, train_stream: torch.Tensor, seq_len: int, cfg: DemoModelConfig,
           gen: torch.Generator) -> list[float]:
    """AdamW (no decay on biases and norms), linear warm-up then cosine decay to 10 %, gradients
    clipped at 1, on random windows drawn with ``gen``. Returns the training loss of every step."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.learning_rate * (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.train_steps - cfg.warmup_steps)
        return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    offsets = torch.arange(seq_len)
    losses: list[float] = []
    for step in range(cfg.train_steps):
        starts = torch.randint(0, len(train_stream) - seq_len, (cfg.batch_size,), generator=gen)
        batch = train_stream[starts[:, None] + offsets[None, :]]  # (B, T)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch, use_cache=False).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.detach().item())
        if step % 50 == 0 or step == cfg.train_steps - 1:
            log.info("demo model step %d/%d: train loss %.3f", step + 1, cfg.train_steps, losses[-1])
    return losses


def _save(out: Path, model: Any, tokenizer: Any, manifest: dict[str, Any]) -> None:
    """Model, tokenizer, then the manifest, in a side folder renamed to ``out`` at the end: a folder
    with a manifest is complete. An existing ``out`` is only ever an empty folder here (never a model)."""
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    if out.exists():
        out.rmdir()  # empty (checked by the caller); a model that appeared meanwhile makes this fail
    tmp.rename(out)
