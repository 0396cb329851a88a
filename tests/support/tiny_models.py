"""Tiny randomly initialised GPT-2 and Llama models (float64) and padded token batches for the gradient tests."""

from __future__ import annotations

import torch

from marketplace.valuation.tokenization import TokenBatch

__all__ = ["MODELS", "VOCAB", "padded_batch", "rel_err", "tiny_gpt2", "tiny_llama"]

VOCAB = 61


def tiny_gpt2(seed: int = 0) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=2, n_embd=24, n_head=2, n_positions=32, vocab_size=VOCAB,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
                     pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(cfg)
    return model.double().eval().requires_grad_(False)


def tiny_llama(seed: int = 0) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=32,
                      bos_token_id=0, eos_token_id=0, pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model.double().eval().requires_grad_(False)


def padded_batch(lengths: list[int], prompt_tokens: list[int] | None = None, seed: int = 1) -> TokenBatch:
    """Random ids, right padding to max(lengths); loss on real tokens after the prompt."""
    gen = torch.Generator().manual_seed(seed)
    t = max(lengths)
    ids = torch.randint(1, VOCAB, (len(lengths), t), generator=gen)
    pos = torch.arange(t)[None, :]
    lens = torch.tensor(lengths)[:, None]
    attn = (pos < lens).long()
    ids = ids * attn  # pad id 0
    mask = (pos < lens) & (pos >= 1)
    if prompt_tokens is not None:
        mask &= pos >= torch.tensor(prompt_tokens)[:, None]
    return TokenBatch(ids, attn, mask)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


MODELS = {"gpt2-conv1d": tiny_gpt2, "llama-linear": tiny_llama}
