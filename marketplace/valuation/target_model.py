"""Target models: any Hugging Face ``AutoModelForCausalLM`` folder + its tokenizer, loaded offline.

The device is explicit (CPU by default); resolving ``"auto"``/``"cuda"`` is the edge's job. Models
are loaded in float32 (gradients are float32 everywhere), in eval mode, with every
parameter frozen: LoGra needs activation gradients only, so no ``.grad`` is ever accumulated.

:func:`digest_model_dir` fingerprints a folder (config + weights + tokenizer files); the campaign
code stamps it on campaigns and the label sets carry it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import torch

from marketplace.errors import ConfigError, NotFoundError

__all__ = [
    "DIGEST_FILE_PATTERNS",
    "TargetModel",
    "check_checkpoint_folder",
    "context_length_of",
    "digest_model_dir",
    "load_pretrained",
    "load_target_model",
    "load_target_model_cached",
]

log = logging.getLogger(__name__)

# What defines a checkpoint's behaviour: architecture, weights and tokenizer. generation_config.json,
# READMEs and our own build manifest are deliberately left out (they never change a gradient).
DIGEST_FILE_PATTERNS: tuple[str, ...] = (
    "config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "*.bin",
    "*.bin.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
)

_CHUNK_BYTES = 1 << 20
_digest_lock = threading.Lock()
# transformers builds models on the meta device through process-global patches, and resolves its lazy
# attributes non-atomically; two threads loading at once (a thread-pool task runner) can leave
# parameters on "meta" or fail the import. Loading is serialised.
_load_lock = threading.Lock()
_digest_cache: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def _digest_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and any(fnmatch(p.name, pat) for pat in DIGEST_FILE_PATTERNS)
    )


def digest_model_dir(path: str | Path) -> str:
    """sha256 hex over (relative name, content sha256) of the config, weight and tokenizer files.

    Cached in-process by (name, size, mtime_ns) of every file, so a second call on an unchanged
    folder costs one ``stat`` per file.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise NotFoundError(f"target model folder {folder} does not exist; pass a saved causal-LM checkpoint folder")
    files = _digest_files(folder)
    if not any(f.name == "config.json" for f in files):
        raise ConfigError(
            f"{folder} has no config.json: it is not a Hugging Face model folder "
            "(save one with model.save_pretrained(DIR) and tokenizer.save_pretrained(DIR))"
        )
    stats = tuple((str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (str(folder), stats)
    with _digest_lock:
        cached = _digest_cache.get(key)
    if cached is not None:
        return cached
    outer = hashlib.sha256()
    for f, (rel, _size, _mtime) in zip(files, stats, strict=True):
        inner = hashlib.sha256()
        with f.open("rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                inner.update(chunk)
        outer.update(rel.encode("utf-8") + b"\0" + inner.hexdigest().encode("ascii") + b"\n")
    digest = outer.hexdigest()
    with _digest_lock:
        _digest_cache[key] = digest
    return digest


@dataclass(frozen=True)
class TargetModel:
    """A loaded causal LM, its fast tokenizer, and where they came from."""

    model: Any  # transformers.PreTrainedModel (typed loosely: transformers is imported lazily)
    tokenizer: Any  # transformers.PreTrainedTokenizerFast
    path: str
    digest: str
    device: torch.device
    dtype: torch.dtype

    @property
    def context_length(self) -> int:
        return context_length_of(self.model.config)


def context_length_of(config: Any) -> int:
    """The context length a transformers model config declares (2**30 when it declares none)."""
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1 << 30


def _check_device(device: torch.device | str) -> torch.device:
    if isinstance(device, str) and device in ("auto", ""):
        raise ConfigError("device 'auto' must be resolved by the caller (the CLI does); pass 'cpu' or 'cuda:0'")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N") from exc


PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")


def check_checkpoint_folder(folder: Path, *, weights: bool) -> None:
    """Refuse what must not or cannot be loaded, before transformers sees it: a config.json that is not
    JSON, a folder that declares its own code (``auto_map``: never run, and not silently swapped for a
    built-in class), and (``weights``) a folder without safetensors weights, such as one holding only a
    pickled ``pytorch_model.bin`` (unpickling runs code, so such weights are never read)."""
    for config in (folder / "config.json", folder / "tokenizer_config.json"):
        if not config.is_file():
            continue
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config} is not valid JSON ({' '.join(str(exc).split())}); "
                              "save the model again with model.save_pretrained(DIR)") from exc
        if isinstance(data, dict) and data.get("auto_map"):
            raise ConfigError(f"{config} declares its own code (auto_map), which is never run; save the model "
                              "with a built-in transformers architecture (model.save_pretrained(DIR))")
    if weights and not any(folder.glob("*.safetensors")):
        pickled = sorted({p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern)})
        if pickled:
            raise ConfigError(
                f"{folder} holds only pickled weights ({', '.join(pickled[:3])}), which are never loaded "
                "(unpickling can run code); convert them to safetensors where you trust them: load the model "
                "and save it with model.save_pretrained(DIR)")
        raise ConfigError(f"{folder} has no *.safetensors weights; save the model with model.save_pretrained(DIR)")


def load_pretrained(loader: Any, folder: Path, what: str, **kwargs: Any) -> Any:
    """The one way a model, tokenizer or config is read from a (buyer-supplied) folder: offline, never
    remote code, safetensors only for weights (pass ``use_safetensors=True``). Anything a corrupt file
    raises becomes one ConfigError naming the folder and the fix."""
    try:
        return loader.from_pretrained(folder, local_files_only=True, trust_remote_code=False, **kwargs)
    except Exception as exc:  # a truncated or hostile file can raise anything; the caller gets one line
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConfigError(f"cannot load the {what} from {folder}: {reason}. The folder needs config.json, "
                          "*.safetensors weights and tokenizer files saved with save_pretrained; "
                          "code shipped with a model is never run") from exc


def load_target_model(
    path: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> TargetModel:
    """Load ``AutoModelForCausalLM`` + ``AutoTokenizer`` from a local folder (never a hub download).

    The tokenizer must be a *fast* tokenizer: prompt masking needs its character offsets.
    """
    dev = _check_device(device)
    folder = Path(path).expanduser().resolve()
    digest = digest_model_dir(folder)
    check_checkpoint_folder(folder, weights=True)
    with _load_lock:
        # the import too: transformers' lazy module can fail when two threads resolve it at once
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model: Any = load_pretrained(AutoModelForCausalLM, folder, "causal LM", dtype=dtype, use_safetensors=True)
        tokenizer = load_pretrained(AutoTokenizer, folder, "tokenizer")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"the tokenizer in {folder} is not a fast tokenizer; prompt masking needs offsets. "
            "Save a PreTrainedTokenizerFast (tokenizer.json) with the model."
        )
    meta = [n for n, p in model.named_parameters() if p.is_meta]
    if meta:
        raise ConfigError(f"{folder}: parameters {meta[:3]} were not loaded (still on the meta device); "
                          "the checkpoint is incomplete")
    model.to(dev)
    model.eval()
    model.requires_grad_(False)
    log.info("loaded target model %s (%s, digest %s) on %s", folder, type(model).__name__, digest[:12], dev)
    return TargetModel(model=model, tokenizer=tokenizer, path=str(folder), digest=digest, device=dev, dtype=dtype)


_thread_cache = threading.local()


def load_target_model_cached(
    path: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> TargetModel:
    """:func:`load_target_model`, cached per thread by (folder, digest, device, dtype).

    Per thread, not per process: LoGra hooks are attached to the module objects, so two threads
    must never share one model instance (a thread-pool task runner maps shards onto threads).
    """
    folder = str(Path(path).expanduser().resolve())
    key = (folder, digest_model_dir(folder), str(_check_device(device)), str(dtype))
    cache: dict[tuple[str, str, str, str], TargetModel] | None = getattr(_thread_cache, "models", None)
    if cache is None:
        cache = {}
        _thread_cache.models = cache
    if key not in cache:
        cache.clear()  # one model per thread at a time: keeps memory bounded across campaigns
        cache[key] = load_target_model(folder, device=device, dtype=dtype)
    return cache[key]
