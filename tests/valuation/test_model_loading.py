"""Buyer-supplied model folders: never remote code, never unpickled, and a corrupt file is one
ConfigError naming the folder (``marketplace/valuation/target_model.py:load_pretrained``,
``check_checkpoint_folder``), for the target model, the encoder and the token factor alike."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from marketplace.approx.encoder import EncoderRef, digest_model_dir, load_encoder
from marketplace.approx.token_factor import TokenFactor
from marketplace.errors import ConfigError
from marketplace.valuation.target_model import load_target_model
from tests.support.approx import build_tiny_encoder
from tests.support.models import build_tiny_model


class _Boom:
    """Unpickling this touches the marker file: proof a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("enc") / "encoder")


def _pickled(folder: Path, marker: Path) -> None:
    for f in folder.glob("*.safetensors"):
        f.unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Boom(marker)))


def _truncated(folder: Path, _marker: Path) -> None:
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _garbage_safetensors(folder: Path, _marker: Path) -> None:
    next(folder.glob("*.safetensors")).write_bytes(b"\xff" * 64)


def _config_not_json(folder: Path, _marker: Path) -> None:
    (folder / "config.json").write_text("{ this is not json", encoding="utf-8")


def _remote_code(folder: Path, marker: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cfg["auto_map"] = {k: "evil_model.Evil" for k in ("AutoConfig", "AutoModel", "AutoModelForCausalLM")}
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    (folder / "evil_model.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n",
                                          encoding="utf-8")


def _tokenizer_corrupt(folder: Path, _marker: Path) -> None:
    (folder / "tokenizer.json").write_text("[1, 2", encoding="utf-8")


BREAKS: dict[str, Callable[[Path, Path], None]] = {
    "pickled": _pickled, "truncated": _truncated, "garbage": _garbage_safetensors,
    "config_not_json": _config_not_json, "remote_code": _remote_code, "tokenizer": _tokenizer_corrupt,
}


def _broken(src: Path, tmp_path: Path, how: str) -> tuple[Path, Path]:
    folder = tmp_path / f"broken-{how}"
    shutil.copytree(src, folder)
    marker = tmp_path / "pwned"
    BREAKS[how](folder, marker)
    return folder, marker


def _one_line_naming(exc: ConfigError, folder: Path) -> None:
    message = str(exc)
    assert "\n" not in message and str(folder) in message, message
    assert "save_pretrained" in message, message  # says what to do


@pytest.mark.parametrize("how", sorted(BREAKS))
def test_target_model(tiny_lm: Path, tmp_path: Path, how: str) -> None:
    folder, marker = _broken(tiny_lm, tmp_path, how)
    with pytest.raises(ConfigError) as caught:
        load_target_model(folder)
    _one_line_naming(caught.value, folder)
    assert not marker.exists(), "a checkpoint was unpickled or remote code ran"


@pytest.mark.parametrize("how", sorted(BREAKS))
def test_encoder(tiny_encoder: Path, tmp_path: Path, how: str) -> None:
    folder, marker = _broken(tiny_encoder, tmp_path, how)
    with pytest.raises(ConfigError) as caught:
        load_encoder(EncoderRef(source="path", path=str(folder), digest=digest_model_dir(folder)))
    _one_line_naming(caught.value, folder)
    assert not marker.exists()


@pytest.mark.parametrize("how", ["config_not_json", "remote_code", "tokenizer"])
def test_token_factor(tiny_lm: Path, tmp_path: Path, how: str) -> None:
    folder, marker = _broken(tiny_lm, tmp_path, how)
    with pytest.raises(ConfigError) as caught:
        TokenFactor.from_target_model(folder, 32)
    _one_line_naming(caught.value, folder)
    assert not marker.exists()


def test_intact_folders_still_load(tiny_lm: Path, tiny_encoder: Path) -> None:
    assert load_target_model(tiny_lm).tokenizer.is_fast
    assert load_encoder(EncoderRef(source="path", path=str(tiny_encoder), digest=digest_model_dir(tiny_encoder))).dim
    assert TokenFactor.from_target_model(tiny_lm, 32).truncation == 32
