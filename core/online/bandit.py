"""Exponential weights (Hedge) over K shadow variants, rewarded by realized per-period returns.

Why Hedge and not a bandit proper (UCB1, EXP3, Thompson sampling): those algorithms exist to
decide which arm to *try*, because only the arm pulled reveals its reward. Here every variant
runs in shadow on every event, so every variant's reward is observed every period: the full-
information setting, for which Hedge (EXP3 without its importance weighting and forced
exploration) is the matching algorithm, with regret O(sqrt(T log K)) against the best variant.
It is also deterministic (no random state to save, so a restart resumes bit for bit), O(K) per
period, and its weights are directly "the weight shifted toward variants that are working".

Weights are ``softmax(eta * score)`` with ``score_k = decay * score_k + r_k`` and ``r_k`` the
variant's log return over the period, so with ``decay = 1`` the leader is the variant with the
highest compounded return so far and two variants whose returns differ by ``d`` (in log terms)
carry weights in the ratio ``exp(eta * d)``. ``decay < 1`` forgets old periods (half-life
``log(0.5) / log(decay)`` periods), for markets whose best parameters drift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.errors import ConfigError


class HedgeWeights:
    """Preallocated scores and totals of K variants; O(K) per period."""

    def __init__(self, k: int, *, eta: float = 20.0, decay: float = 1.0) -> None:
        if k < 2:
            raise ConfigError(f"a bandit needs at least 2 variants, was {k}")
        if not (eta > 0 and math.isfinite(eta)):
            raise ConfigError(f"eta must be positive and finite, was {eta}")
        if not 0.0 < decay <= 1.0:
            raise ConfigError(f"decay must be within (0, 1], was {decay}")
        self.k = k
        self.eta = eta
        self.decay = decay
        self.score = np.zeros(k)  # discounted sum of log returns: drives the weights
        self.total = np.zeros(k)  # undiscounted sum: the evidence for a proposal
        self.periods = 0
        self._weights = np.full(k, 1.0 / k)

    def update(self, rewards: np.ndarray) -> None:
        """Add one period's log return of every variant."""
        if self.decay != 1.0:
            self.score *= self.decay
        self.score += rewards
        self.total += rewards
        self.periods += 1
        z = self.eta * (self.score - self.score.max())  # shifted: exp never overflows
        w = np.exp(z)
        self._weights = w / w.sum()

    def weights(self) -> np.ndarray:
        return self._weights.copy()

    def leader(self) -> int:
        return int(np.argmax(self._weights))

    def to_state(self) -> dict[str, Any]:
        return {
            "score": self.score.tolist(),
            "total": self.total.tolist(),
            "periods": self.periods,
            "weights": self._weights.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if len(state["score"]) != self.k:
            raise ConfigError(f"bandit state holds {len(state['score'])} variants, not {self.k}")
        self.score = np.asarray(state["score"], dtype=float)
        self.total = np.asarray(state["total"], dtype=float)
        self.periods = int(state["periods"])
        self._weights = np.asarray(state["weights"], dtype=float)
