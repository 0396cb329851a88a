"""The demo target model: deterministic for a seed, cached, loadable offline (GPT-2 and Llama)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from marketplace.corpus import python_docs_paragraphs
from marketplace.errors import ConfigError, NotFoundError
from marketplace.valuation.demo_model import MANIFEST_NAME, DemoModelConfig, build_demo_model
from marketplace.valuation.target_model import digest_model_dir, load_target_model

TINY = DemoModelConfig(n_layer=1, d_model=32, n_head=2, context=64, vocab_size=320, text_chars=10_000,
                       train_steps=25, batch_size=8, seq_len=32, warmup_steps=3, learning_rate=1e-2)


@pytest.fixture(scope="module")
def text() -> list[str]:
    return python_docs_paragraphs(40_000, seed=0)


def test_same_seed_same_model_other_seed_other_model(tmp_path: Path, text: list[str]) -> None:
    a = build_demo_model(tmp_path / "a", TINY, seed=3, paragraphs=text)
    b = build_demo_model(tmp_path / "b", TINY, seed=3, paragraphs=text)
    c = build_demo_model(tmp_path / "c", TINY, seed=4, paragraphs=text)
    assert not a.cached and not b.cached
    assert digest_model_dir(a.path) == digest_model_dir(b.path) != digest_model_dir(c.path)
    assert a.final_eval_loss < a.initial_eval_loss - 0.5  # training did something


def test_second_build_is_cached_and_a_changed_config_rebuilds(tmp_path: Path, text: list[str]) -> None:
    first = build_demo_model(tmp_path / "m", TINY, seed=0, paragraphs=text)
    digest = digest_model_dir(first.path)
    again = build_demo_model(tmp_path / "m", TINY, seed=0, paragraphs=text)
    assert again.cached and again.build_seconds < 1.0 and digest_model_dir(again.path) == digest
    manifest = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    assert manifest["config"] == TINY.model_dump(mode="json") and manifest["seed"] == 0
    changed = build_demo_model(tmp_path / "m", TINY.model_copy(update={"train_steps": 5}), seed=0, paragraphs=text)
    assert not changed.cached and digest_model_dir(changed.path) != digest


def test_global_rng_is_untouched(tmp_path: Path, text: list[str]) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_demo_model(tmp_path / "m", TINY, seed=0, paragraphs=text)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("arch,layer", [("gpt2", "Conv1D"), ("llama", "Linear")])
def test_loads_offline_with_a_fast_tokenizer(tmp_path: Path, text: list[str], arch: str, layer: str) -> None:
    built = build_demo_model(tmp_path / arch, TINY.model_copy(update={"arch": arch}), seed=0, paragraphs=text)
    target = load_target_model(built.path)
    assert target.tokenizer.is_fast and target.tokenizer.eos_token == "<|endoftext|>"
    assert target.digest == digest_model_dir(built.path) and target.device == torch.device("cpu")
    assert all(not p.requires_grad for p in target.model.parameters())
    assert target.context_length == 64
    kinds = {type(m).__name__ for m in target.model.modules()}
    assert layer in kinds
    enc = target.tokenizer(["def f(x): return x"], return_offsets_mapping=True)
    assert len(enc["input_ids"][0]) > 2


def test_refuses_a_foreign_folder_and_missing_models(tmp_path: Path, text: list[str]) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a demo model folder"):
        build_demo_model(tmp_path / "mine", TINY, seed=0, paragraphs=text)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(NotFoundError):
        digest_model_dir(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"no config\.json"):
        digest_model_dir(tmp_path / "mine")
    with pytest.raises(ConfigError, match="auto"):
        load_target_model(tmp_path / "mine", device="auto")


def test_digest_follows_content(tmp_path: Path, text: list[str]) -> None:
    built = build_demo_model(tmp_path / "m", TINY, seed=0, paragraphs=text)
    before = digest_model_dir(built.path)
    (Path(built.path) / "README.md").write_text("docs do not change the digest")
    assert digest_model_dir(built.path) == before
    cfg = Path(built.path) / "config.json"
    cfg.write_text(cfg.read_text().replace('"n_layer": 1', '"n_layer": 1 '))
    assert digest_model_dir(built.path) != before
