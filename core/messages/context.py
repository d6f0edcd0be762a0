"""Context the strategic tier writes to Redis (``<ns>:context``) and its readers decode.

``news``, ``regime`` and ``macro`` come from :mod:`pipelines.strategic`, each computed as of a
replay date; ``adaptation`` is the record of the last :func:`pipelines.adaptation.adapt` run.
The adaptation flow and the dashboard read them back.
"""

from __future__ import annotations

from typing import Any, Literal

from core.messages.base import Message

CONTEXT_SCHEMA_VERSION = 1


class StrategicContext(Message, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    """The header every context of the strategic tier carries; ``kind`` names the context.

    ``computed_at`` (ISO UTC wall time) is set when the context is written; a document built
    but not yet written has none.
    """

    schema_version: int
    as_of: str
    computed_at: str | None = None


# --- news -------------------------------------------------------------------------------------


class DailySentiment(Message, frozen=True, kw_only=True):
    date: str
    tweets: int
    sentiment: float


class TickerSentiment(Message, frozen=True, kw_only=True):
    """A ticker's tweets over the window: count, mean score (null without tweets), per day."""

    tweets: int
    sentiment: float | None
    daily: list[DailySentiment]
    last_tweet: str | None


class MarketSentiment(Message, frozen=True, kw_only=True):
    """Tweet-weighted mean of the tickers' sentiment (null when no ticker had tweets)."""

    tweets: int
    sentiment: float | None


class EarningsEvent(Message, frozen=True, kw_only=True):
    symbol: str
    date: str
    direction: int
    abnormal_return: float
    gap_z: float
    volume_ratio: float
    keyword_tweets: int


class NewsContext(StrategicContext, frozen=True, kw_only=True, tag="news"):
    """Sentiment per ticker and of the market, and recent earnings events."""

    model: dict[str, Any]
    window_days: int
    event_days: int
    tickers: dict[str, TickerSentiment]
    market: MarketSentiment
    earnings_events: list[EarningsEvent]
    last_tweet: str | None


# --- high time frame --------------------------------------------------------------------------


class RegimeContext(StrategicContext, frozen=True, kw_only=True, tag="regime"):
    """The regime of the index on ``as_of``, from a mixture fitted once at ``as_of``."""

    symbol: str
    decided_at: str
    regime: int
    label: str
    turbulent: bool
    probability: float
    turbulent_probability: float
    volatility: float
    window_return: float
    regime_volatility: float
    exposure: float
    fit_window: int
    component_volatility: list[float]


class MacroDecision(Message, frozen=True, kw_only=True, omit_defaults=True):
    """A macro strategy's latest decision on or before ``as_of``; ``stale`` when too old."""

    decided_at: str | None
    age_days: int | None = None
    stale: bool
    exposure: float | None
    reason: dict[str, float | None]


Stance = Literal["risk_on", "risk_off", "unknown"]


class MacroContext(StrategicContext, frozen=True, kw_only=True, tag="macro"):
    """Each macro strategy's decision and the overall stance."""

    symbol: str
    fed_policy: MacroDecision
    global_liquidity: MacroDecision
    macro_trend: MacroDecision
    stance: Stance
    equity_exposure: float | None
    why: str


# --- adaptation -------------------------------------------------------------------------------


class AdaptationContext(Message, frozen=True, kw_only=True):
    """What the strategic tier says, reduced to what the adaptation rules read (null: not
    known)."""

    turbulent_probability: float | None = None
    regime: str | None = None
    macro_stance: str | None = None
    market_sentiment: float | None = None

    @classmethod
    def from_documents(
        cls,
        regime: RegimeContext | None,
        news: NewsContext | None,
        macro: MacroContext | None,
    ) -> AdaptationContext:
        """Reduce the ``regime``, ``news`` and ``macro`` contexts (any may be None)."""
        return cls(
            turbulent_probability=regime.turbulent_probability if regime else None,
            regime=regime.label if regime else None,
            macro_stance=macro.stance if macro else None,
            market_sentiment=news.market.sentiment if news else None,
        )


class AdaptationChange(Message, frozen=True, kw_only=True):
    """One adjustment: ``what`` is ``"weight"`` or ``"param:<name>"``."""

    strategy: str
    what: str
    old: float
    new: float
    why: str


class StrategyPerformance(Message, frozen=True, kw_only=True):
    """A strategy's recent performance as the core's tracker measures it."""

    sharpe: float
    periods: int


class ProposalDecision(Message, frozen=True, kw_only=True, omit_defaults=True):
    """What became of a config proposed to the learning tier (:mod:`pipelines.proposals`):
    the registered challenger, whether it was promoted and why, and the MLflow run of the
    decision; ``skipped`` says why no challenger was registered at all."""

    strategy: str
    source: str
    config: dict[str, Any]
    version: str | None = None
    promoted: bool
    reason: str
    decision_run: str | None = None
    skipped: bool = False


class StackingContext(Message, frozen=True, kw_only=True):
    """The stacked model's weights for the rule strategies (context ``stacking``).

    ``weights`` sum to one (the model's view); ``base_weights`` are the same on the core's
    scale (mean one), which the adaptation engine moves the core's weights around when
    ``useful``: the out-of-sample hit rate beat the base rate and the information coefficient
    was positive. ``run_id`` is the MLflow run that recorded the fit.
    """

    schema_version: int
    computed_at: str
    strategies: list[str]
    weights: dict[str, float]
    base_weights: dict[str, float]
    useful: bool
    why: str
    hit_rate: float
    base_rate: float
    information_coefficient: float
    out_of_sample_rows: int
    run_id: str | None = None


class AdaptationRecord(Message, frozen=True, kw_only=True, omit_defaults=True):
    """What one adaptation run saw, decided and did (context ``adaptation``).

    ``skipped`` says why nothing was adapted; ``performance`` and ``performance_missing`` are
    there when something was. ``sent``, ``run_id`` and ``received_by`` are added as the flow
    records and sends the changes.
    """

    schema_version: int
    core: str
    computed_at: str
    context: AdaptationContext
    context_as_of: dict[str, str | None]
    weights: dict[str, float]
    params: dict[str, dict[str, float]]
    changes: list[AdaptationChange]
    skipped: str | None = None
    performance: dict[str, StrategyPerformance] | None = None
    performance_missing: list[str] | None = None
    sent: bool | None = None
    run_id: str | None = None
    received_by: int | None = None
    # Where the base weights came from (a stacking run), and what became of the parameter
    # changes proposed as challengers (pipelines.proposals).
    base_weights_from: str | None = None
    proposals: list[ProposalDecision] | None = None


CONTEXT_TYPES: dict[str, type[Message]] = {
    "news": NewsContext,
    "regime": RegimeContext,
    "macro": MacroContext,
    "adaptation": AdaptationRecord,
    "stacking": StackingContext,
}
"""The type of each context record, by its field in ``<ns>:context``."""
