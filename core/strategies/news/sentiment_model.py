"""The tweet sentiment classifier: TF-IDF + logistic regression (scikit-learn), and its lexicon.

Training is pure (data in, fitted model and metrics out; no I/O, fixed ``random_state``).
Persisting the model is the registry's job (:mod:`registry.learned_models`, skops format).

The strategy does not hold the fitted model. It scores tweets with a **lexicon** distilled from
the model's coefficients (:func:`lexicon_from_model`): for each unigram ``t``,
``w_t = (coef_bullish_t - coef_bearish_t) * idf_t / median(idf)``, i.e. the token's pull on the
bullish-versus-bearish log-odds before the TF-IDF row normalisation. The ``top_k`` strongest
tokens go into the strategy's config, so the config and state stay plain JSON, the strategy can be
rebuilt from ``strategy.json`` alone and both of its forms score identically (parity).

scikit-learn is imported inside the functions: the strategy catalogue imports every module of
this package, and the live core should not pay scikit-learn's import time for a lexicon.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from core.config import FrozenConfig
from core.errors import ConfigError
from core.strategies.news.text import TOKEN_PATTERN

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# Labels of sentiment_twitter_financial_news (see core.data.loaders.SENTIMENT_LABELS).
BEARISH, BULLISH, NEUTRAL = 0, 1, 2
LABELS = (BEARISH, BULLISH, NEUTRAL)


class SentimentModelConfig(FrozenConfig, frozen=True, kw_only=True):
    """Hyper-parameters of the TF-IDF + logistic-regression classifier."""

    ngram_max: int = 2
    min_df: int = 2
    sublinear_tf: bool = True
    C: float = 4.0
    balanced: bool = True  # class_weight="balanced": neutral tweets outnumber the others 3:1
    max_iter: int = 1000
    random_state: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.ngram_max <= 3:
            raise ConfigError(f"ngram_max must be in [1, 3], was {self.ngram_max}")
        if self.min_df < 1:
            raise ConfigError(f"min_df must be >= 1, was {self.min_df}")
        if not self.C > 0.0:
            raise ConfigError(f"C must be > 0, was {self.C}")
        if self.max_iter < 1:
            raise ConfigError(f"max_iter must be >= 1, was {self.max_iter}")


def _check_labels(labels: Sequence[int], texts: Sequence[str], what: str) -> np.ndarray:
    array = np.asarray(labels, dtype=np.int64)
    if len(array) != len(texts):
        raise ValueError(f"{what}: {len(texts)} texts but {len(array)} labels")
    unknown = sorted(set(array.tolist()) - set(LABELS))
    if unknown:
        raise ValueError(f"{what}: labels must be in {LABELS}, found {unknown}")
    return array


def train_sentiment_model(
    texts: Sequence[str],
    labels: Sequence[int],
    config: SentimentModelConfig | None = None,
    *,
    valid_texts: Sequence[str],
    valid_labels: Sequence[int],
) -> tuple[Pipeline, dict[str, float]]:
    """Fit the classifier on the train split and measure it on the held-out split.

    Parameters
    ----------
    texts, labels
        Training tweets and their labels (0 bearish, 1 bullish, 2 neutral).
    config
        Hyper-parameters; defaults to :class:`SentimentModelConfig`.
    valid_texts, valid_labels
        The held-out split, used only for the metrics.

    Returns
    -------
    tuple
        The fitted ``Pipeline`` (``tfidf`` -> ``clf``) and metrics ``accuracy``, ``macro_f1``
        (sklearn.metrics on the held-out split), ``n_train``, ``n_valid``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    cfg = config or SentimentModelConfig()
    y_train = _check_labels(labels, texts, "train")
    y_valid = _check_labels(valid_labels, valid_texts, "valid")
    model = Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(
                    token_pattern=TOKEN_PATTERN,
                    ngram_range=(1, cfg.ngram_max),
                    min_df=cfg.min_df,
                    sublinear_tf=cfg.sublinear_tf,
                ),
            ),
            (
                "clf",
                LogisticRegression(
                    C=cfg.C,
                    solver="newton-cg",
                    max_iter=cfg.max_iter,
                    class_weight="balanced" if cfg.balanced else None,
                    random_state=cfg.random_state,
                ),
            ),
        ]
    )
    # One BLAS thread: on a small machine shared with other work, oversubscribed threads make
    # this ~0.1 s fit take many seconds.
    with threadpool_limits(limits=1):
        model.fit(list(texts), y_train)
        predicted = model.predict(list(valid_texts))
    metrics = {
        "accuracy": float(accuracy_score(y_valid, predicted)),
        "macro_f1": float(f1_score(y_valid, predicted, average="macro")),
        "n_train": float(len(y_train)),
        "n_valid": float(len(y_valid)),
    }
    return model, metrics


def bullish_minus_bearish(model: Pipeline, texts: Sequence[str]) -> np.ndarray:
    """Score texts with the full model: P(bullish) - P(bearish), in [-1, 1]."""
    proba = model.predict_proba(list(texts))
    classes = list(model.classes_)
    return np.asarray(proba[:, classes.index(BULLISH)] - proba[:, classes.index(BEARISH)])


def lexicon_from_model(model: Pipeline, top_k: int = 200) -> tuple[tuple[str, float], ...]:
    """Distil the fitted model into its ``top_k`` strongest unigram weights (see module doc).

    Returns
    -------
    tuple
        ``(token, weight)`` pairs, strongest first (ties by token), weights rounded to 6
        decimals so the lexicon stays short as a registry parameter.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, was {top_k}")
    tfidf, clf = model.named_steps["tfidf"], model.named_steps["clf"]
    classes = list(clf.classes_)
    pull = clf.coef_[classes.index(BULLISH)] - clf.coef_[classes.index(BEARISH)]
    idf = tfidf.idf_
    names = tfidf.get_feature_names_out()
    unigram = np.array([" " not in name for name in names])
    weights = pull * idf / float(np.median(idf))
    order = sorted(np.flatnonzero(unigram), key=lambda i: (-abs(weights[i]), names[i]))
    return tuple((str(names[i]), round(float(weights[i]), 6)) for i in order[:top_k])
