"""Plausibility checks on incoming market data, before any strategy sees it.

Decoding (``core.codec``) already rejects bad JSON, unknown versions, missing or mistyped
fields and non-finite numbers. The guard adds what a well-formed message can still get wrong:
non-positive prices, negative sizes, a crossed book, a bar whose high is below its low, and
time going backwards (per feed and symbol) by more than a tolerance.
"""

from __future__ import annotations

from typing import Any

from core.model import Bar, FundingRate, Quote, Trade

DEFAULT_BACKWARDS_TOLERANCE_NS = 1_000_000_000  # feeds interleave venues with clock skew


class EventGuard:
    """Reject implausible events with a one-line reason; O(1) per event."""

    def __init__(self, backwards_tolerance_ns: int = DEFAULT_BACKWARDS_TOLERANCE_NS) -> None:
        self.tolerance = backwards_tolerance_ns
        self._last_ts: dict[tuple[str, str], int] = {}

    def check(self, event: Any) -> str | None:
        """Return why ``event`` is rejected, or None if it may go on."""
        reason = _content_problem(event)
        if reason is not None:
            return reason
        symbol = getattr(event, "symbol", "")
        # One symbol on two venues (spot and perpetual) is two clocks: order each on its own.
        key = (event.kind, f"{symbol}@{getattr(event, 'venue', '')}")
        last = self._last_ts.get(key)
        if last is not None and event.ts_event < last - self.tolerance:
            return (
                f"{event.kind} {symbol}: timestamp {event.ts_event} goes back "
                f"{(last - event.ts_event) / 1e9:.3f} s (tolerance {self.tolerance / 1e9:g} s)"
            )
        if last is None or event.ts_event > last:
            self._last_ts[key] = event.ts_event
        return None

    def to_state(self) -> dict[str, int]:
        return {f"{kind}|{symbol}": ts for (kind, symbol), ts in self._last_ts.items()}

    def restore(self, state: dict[str, int]) -> None:
        self._last_ts = {tuple(k.split("|", 1)): int(v) for k, v in state.items()}  # type: ignore[misc]


def _content_problem(event: Any) -> str | None:
    if isinstance(event, Quote):
        book = f"bid {event.bid_price} ask {event.ask_price}"
        if event.bid_price <= 0 or event.ask_price <= 0:
            return f"quote {event.symbol}: non-positive price, {book}"
        if event.bid_size < 0 or event.ask_size < 0:
            return f"quote {event.symbol}: negative size, {event.bid_size} x {event.ask_size}"
        if event.bid_price > event.ask_price:
            return f"quote {event.symbol}: crossed book, {book}"
    elif isinstance(event, Trade):
        if event.price <= 0:
            return f"trade {event.symbol}: non-positive price {event.price}"
        if event.size <= 0:
            return f"trade {event.symbol}: non-positive size {event.size}"
    elif isinstance(event, Bar):
        if min(event.open, event.high, event.low, event.close) <= 0:
            return f"bar {event.symbol}: non-positive price"
        if event.volume < 0:
            return f"bar {event.symbol}: negative volume {event.volume}"
        if event.high < event.low:
            return f"bar {event.symbol}: high {event.high} below low {event.low}"
    elif isinstance(event, FundingRate) and abs(event.rate) > 0.05:
        return f"funding {event.symbol}@{event.venue}: implausible rate {event.rate}"
    return None
