"""The two baselines every approximator is compared with on the same held-out labels.

- TF-IDF + ridge: word uni/bigram TF-IDF (sublinear tf) and a ridge regressor whose penalty is
  chosen by efficient leave-one-out (``RidgeCV``), fitted on the same training labels.
- Target cosine: cosine similarity of a sample's embedding to the mean embedding of the campaign's
  target set. No training: it asks whether "looks like the target data" already explains LinFiK.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["predict_target_cosine", "predict_tfidf_ridge"]


def predict_tfidf_ridge(
    train_texts: Sequence[str], train_y: np.ndarray, test_texts: Sequence[str], *, max_features: int = 50_000
) -> np.ndarray:
    """Fit TF-IDF + RidgeCV on (train_texts, train_y); return predictions (N_test,) for test_texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import RidgeCV

    vectorizer = TfidfVectorizer(
        sublinear_tf=True, ngram_range=(1, 2), min_df=1 if len(train_texts) < 200 else 2, max_features=max_features
    )
    x_train = vectorizer.fit_transform(list(train_texts))
    x_test = vectorizer.transform(list(test_texts))
    model = RidgeCV(alphas=np.logspace(-2, 3, 11))
    model.fit(x_train, np.asarray(train_y, dtype=np.float64))
    return np.asarray(model.predict(x_test), dtype=np.float64)


def predict_target_cosine(sample_embeddings: np.ndarray, target_embeddings: np.ndarray) -> np.ndarray:
    """sample_embeddings: (N, D); target_embeddings: (M, D). Returns (N,) cosine to the target mean."""
    centroid = np.asarray(target_embeddings, dtype=np.float64).mean(axis=0)
    norm = np.linalg.norm(centroid)
    if norm == 0.0:
        return np.zeros(sample_embeddings.shape[0])
    x = np.asarray(sample_embeddings, dtype=np.float64)
    x_norm = np.linalg.norm(x, axis=1).clip(min=1e-12)
    return (x @ (centroid / norm)) / x_norm
