"""The demo target model: deterministic for a seed, cached, loadable offline (GPT-2 and Llama)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from marketplace.corpus import python_docs_paragraphs
from marketplace.corpus.sources import FortunesSource
from marketplace.errors import ConfigError, NotFoundError
from marketplace.valuation.demo_model import (
    MANIFEST_NAME,
    DemoModelConfig,
    build_demo_model,
    build_keyed_demo_model,
)
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


def test_second_build_is_cached_and_a_changed_config_never_overwrites(tmp_path: Path, text: list[str]) -> None:
    first = build_demo_model(tmp_path / "m", TINY, seed=0, paragraphs=text)
    digest = digest_model_dir(first.path)
    again = build_demo_model(tmp_path / "m", TINY, seed=0, paragraphs=text)
    assert again.cached and again.build_seconds < 1.0 and digest_model_dir(again.path) == digest
    manifest = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    assert manifest["config"] == TINY.model_dump(mode="json") and manifest["seed"] == 0
    with pytest.raises(ConfigError, match="never overwritten"):
        build_demo_model(tmp_path / "m", TINY.model_copy(update={"train_steps": 5}), seed=0, paragraphs=text)
    with pytest.raises(ConfigError, match="never overwritten"):
        build_demo_model(tmp_path / "m", TINY, seed=0, paragraphs=text[1:])
    assert digest_model_dir(first.path) == digest


def _fortune_file(folder: Path, name: str, quotes: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("\n%\n".join(quotes) + "\n%\n", encoding="utf-8")
    (folder / f"{name}.dat").write_bytes(b"table")


def test_a_changed_source_builds_a_new_folder_and_keeps_the_old_model(tmp_path: Path, text: list[str]) -> None:
    """A source that changes between two builds (here: a fortune file added to a listed package) gives a
    new keyed folder; the first model stays byte for byte and loads with its digest. A file no source
    lists (another package's) changes nothing."""
    fortunes = tmp_path / "fortunes"
    quotes = [p for p in text if 80 <= len(p) <= 1500]
    _fortune_file(fortunes, "one", quotes[:60])
    source = FortunesSource(directory=fortunes, files_by_package=(("pkg-one", ("one",)), ("pkg-two", ("two",))))
    assert source.missing() == ["pkg-two"]
    models = tmp_path / "models"
    first = build_keyed_demo_model(models, TINY, seed=0, sources=[source])
    assert not first.cached and first.missing_packages == ["pkg-two"]
    assert Path(first.path).parent == models and Path(first.path).name.startswith("demo-25steps-seed0-")
    first_digest = digest_model_dir(first.path)

    _fortune_file(fortunes, "debian-hints", quotes[60:90])  # installed by an unrelated package: not listed
    same = build_keyed_demo_model(models, TINY, seed=0, sources=[source])
    assert same.cached and same.path == first.path

    _fortune_file(fortunes, "two", quotes[60:120])
    second = build_keyed_demo_model(models, TINY, seed=0, sources=[source])
    assert not second.cached and second.path != first.path and second.missing_packages == []
    assert second.text_digest != first.text_digest
    assert digest_model_dir(first.path) == first_digest
    assert load_target_model(first.path).digest == first_digest
    assert sorted(p.name for p in models.iterdir()) == sorted([Path(first.path).name, Path(second.path).name])


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
