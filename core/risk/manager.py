"""Pre-trade risk manager: every order is checked against the limits before it is sent.

The decision is pure arithmetic on the order and the caller's view of the account (price,
position, gross exposure, equity); the manager's own state is small and O(1): a preallocated
ring of the last accepted order times (rate limit), the peak equity (drawdown) and a mode.

Policy
------
* An order that is rejected is never clipped: the caller keeps its position and recomputes the
  delta on its next decision, so what is held is always what some decision asked for.
* An order that *reduces* ``|position|`` without flipping through zero is accepted in every mode
  and is exempt from the size, exposure and rate limits: it can at most close the position, and
  a kill switch must never be blocked by its own limits. Only bad input rejects it.
* Every other order (opening, increasing, flipping) is rejected while HALTED or REDUCE_ONLY, and
  otherwise checked against the order-size, position, gross-exposure and rate limits.
* Bad input (unknown symbol, non-finite or non-positive price, NaN or non-positive quantity,
  non-finite account state) is rejected before anything else, and changes no state.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Mapping
from enum import StrEnum

import msgspec

from core.model import Order, Side
from core.risk.limits import RiskLimits

log = logging.getLogger(__name__)

_INF = math.inf
_BUY = Side.BUY
_SELL = Side.SELL

DAY_NS = 86_400 * 1_000_000_000
RATE_WINDOW_NS = 1_000_000_000
"""Length of the sliding event-time window of ``max_orders_per_second``."""

FLATTEN_STRATEGY = "risk"
"""``Order.strategy`` of the orders the kill switch sends."""


class RiskMode(StrEnum):
    NORMAL = "normal"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"


class RiskCode(StrEnum):
    """Why an order was accepted or rejected (stable strings, used as counter keys)."""

    ACCEPTED = "accepted"
    UNKNOWN_SYMBOL = "unknown_symbol"
    BAD_PRICE = "bad_price"
    BAD_QUANTITY = "bad_quantity"
    BAD_SIDE = "bad_side"
    BAD_STATE = "bad_state"
    MAX_ORDER_QUANTITY = "max_order_quantity"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION = "max_position"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    ORDER_RATE = "order_rate"
    MAX_NET_EXPOSURE = "max_net_exposure"
    PRICE_BAND = "price_band"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"


class RiskDecision(msgspec.Struct, frozen=True):
    """The answer to one check: accepted, or rejected with a one-line reason and a code.

    An accepted order is to be sent exactly as it was checked (orders are never clipped).
    """

    accepted: bool
    reason: str
    code: str


ACCEPTED = RiskDecision(True, "", RiskCode.ACCEPTED)
"""The one decision object returned for every accepted order (the accept path allocates none)."""


class RiskRejection(msgspec.Struct, frozen=True, kw_only=True):
    """A record of one rejected order, kept in the manager's bounded log."""

    ts_ns: int
    order_id: str
    symbol: str
    code: str
    reason: str


def _num(x: float) -> str:
    """Format a number for a reason: ``150`` not ``150.0``, ten significant digits at most."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.10g}"


def _bad_number(name: str, x: float) -> str | None:
    """Say what is wrong with a number that must be finite, or ``None`` when it is fine."""
    if math.isnan(x):
        return f"{name} is NaN"
    if math.isinf(x):
        return f"{name} is {_num(x)}"
    return None


def _explain_bad_input(
    order: Order,
    allowed: frozenset[str],
    price: float,
    position: float,
    gross: float,
    equity: float,
) -> tuple[str, str]:
    """Name the first fault of an input the hot path found bad: symbol, side, size, price, state."""
    symbol = order.symbol
    if not symbol or (allowed and symbol not in allowed):
        return RiskCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}"
    if order.side is not Side.BUY and order.side is not Side.SELL:
        return RiskCode.BAD_SIDE, f"unknown side {order.side!r} for {symbol}"
    quantity = order.quantity
    if not 0.0 < quantity < math.inf:
        if math.isnan(quantity):
            return RiskCode.BAD_QUANTITY, f"quantity is NaN for {symbol}"
        if quantity == 0.0:
            return RiskCode.BAD_QUANTITY, f"zero quantity for {symbol}"
        if quantity < 0.0:
            return RiskCode.BAD_QUANTITY, f"negative quantity {_num(quantity)} for {symbol}"
        return RiskCode.BAD_QUANTITY, f"quantity is {_num(quantity)} for {symbol}"
    if not 0.0 < price < math.inf:
        fault = _bad_number("price", price) or f"price must be > 0, was {_num(price)}"
        return RiskCode.BAD_PRICE, f"{fault} for {symbol}"
    state = (
        _bad_number("position", position)
        or _bad_number("gross_exposure", gross)
        or _bad_number("equity", equity)
    )
    return RiskCode.BAD_STATE, f"{state} for {symbol}"


class RiskManager:
    """Check orders against :class:`RiskLimits`, keep the kill switch and log rejections.

    Parameters
    ----------
    limits
        The limits to enforce.
    log_size
        How many rejections the log keeps (the oldest drop out; counters keep counting).
    """

    def __init__(self, limits: RiskLimits, *, log_size: int = 1024) -> None:
        self.limits = limits
        self.mode = RiskMode.NORMAL
        self.halt_reason = ""
        self.rejections: deque[RiskRejection] = deque(maxlen=log_size)
        self.rejected_by_code: Counter[str] = Counter()
        self.accepted = 0
        # Unlimited limits become inf so the hot path compares plain floats, no None tests.
        inf = math.inf
        self._max_qty = limits.max_order_quantity or inf
        self._max_notional = limits.max_order_notional or inf
        self._max_gross = inf if limits.max_gross_exposure is None else limits.max_gross_exposure
        self._default_position = inf if limits.max_position is None else limits.max_position
        self._position_overrides = dict(limits.position_overrides)
        self._allowed = frozenset(limits.allowed_symbols)
        self._max_drawdown = limits.max_drawdown if limits.max_drawdown is not None else inf
        self._peak = math.nan  # unknown until the first equity is seen
        self._max_net = inf if limits.max_net_exposure is None else limits.max_net_exposure
        self._max_daily_loss = limits.max_daily_loss if limits.max_daily_loss is not None else inf
        self.price_band = limits.price_band  # checked at execution (see check_fill_price)
        self._day = -1  # event-time day of the last equity seen, and equity at its start
        self._day_start = math.nan
        self._rate = limits.max_orders_per_second or 0
        self._ring = [0] * self._rate  # times of the last ``_rate`` accepted orders
        self._ring_head = 0  # index of the oldest entry once the ring is full
        self._ring_count = 0

    def to_state(self) -> dict[str, object]:
        """Mode, halt reason and peak equity, so a restarted core keeps its kill switch; and
        the decision counts, so a restarted core's summary counts every order it made."""
        return {
            "mode": str(self.mode),
            "halt_reason": self.halt_reason,
            "peak": None if math.isnan(self._peak) else self._peak,
            "accepted": self.accepted,
            "rejected_by_code": dict(self.rejected_by_code),
            "day": self._day,
            "day_start": None if math.isnan(self._day_start) else self._day_start,
        }

    def restore(self, state: dict[str, object]) -> None:
        self.mode = RiskMode(str(state["mode"]))
        self.halt_reason = str(state["halt_reason"])
        peak = state["peak"]
        self._peak = math.nan if peak is None else float(peak)  # type: ignore[arg-type]
        # Snapshots written before the counts were kept have none.
        self.accepted = int(state.get("accepted", 0))  # type: ignore[call-overload]
        counts = state.get("rejected_by_code") or {}
        self.rejected_by_code = Counter({str(k): int(v) for k, v in counts.items()})  # type: ignore[attr-defined]
        self._day = int(state.get("day", -1))  # type: ignore[call-overload]
        day_start = state.get("day_start")
        self._day_start = math.nan if day_start is None else float(day_start)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ the check

    def check(
        self,
        order: Order,
        *,
        price: float,
        position: float,
        gross_exposure: float,
        equity: float,
        ts_ns: int,
        net_exposure: float = 0.0,
    ) -> RiskDecision:
        """Decide whether ``order`` may be sent.

        Parameters
        ----------
        order
            The order to check.
        price
            The price the order is expected to trade at (notional and exposure are valued at it).
        position
            The signed position held in ``order.symbol`` before the order.
        gross_exposure
            The account's ``sum |position| * price`` over all symbols before the order, with this
            symbol valued at ``price``.
        equity
            The account equity now; it also feeds the drawdown kill switch. A check that trips
            the switch only halts; the flatten orders come from :meth:`on_equity` (or
            :func:`flatten_orders`), which the caller runs on every equity update anyway.
        ts_ns
            Event time of the decision, integer ns (drives the order-rate window). It should not
            decrease: accepted orders stamped later than ``ts_ns`` still count as inside the
            window, so a replay restarted from an earlier time needs a fresh manager.
        net_exposure
            The account's ``sum position * price`` before the order (for ``max_net_exposure``).

        Returns
        -------
        RiskDecision
            :data:`ACCEPTED`, or a rejection (also appended to :attr:`rejections`).
        """
        # The hot path: plain comparisons on locals, and calls only when something is wrong.
        # Chained comparisons are false for NaN, so one test per number screens all bad input.
        symbol, quantity, side, inf = order.symbol, order.quantity, order.side, _INF
        allowed = self._allowed
        if not (
            0.0 < quantity < inf
            and 0.0 < price < inf
            and -inf < position < inf
            and -inf < gross_exposure < inf
            and -inf < equity < inf
            and (side is _BUY or side is _SELL)
            and symbol
            and (not allowed or symbol in allowed)
        ):
            code, reason = _explain_bad_input(
                order, allowed, price, position, gross_exposure, equity
            )
            return self._reject(order, ts_ns, code, reason)
        peak = self._peak  # _observe_equity, inlined: a call costs a tenth of a check
        if not equity <= peak:
            self._peak = equity
        elif peak > 0.0 and (peak - equity) / peak > self._max_drawdown:
            self._trip(peak, equity)
        new_position = position + quantity if side is _BUY else position - quantity
        size, held = abs(new_position), abs(position)
        reducing = size <= held and new_position * position >= 0.0
        if not reducing:  # see the module's policy: reducing orders skip the limits below
            if self.mode is not RiskMode.NORMAL:
                return self._reject_by_mode(order, ts_ns, position, new_position)
            gross_after = gross_exposure + (size - held) * price
            net_after = net_exposure + (new_position - position) * price
            limit = self._position_overrides.get(symbol, self._default_position)
            if (
                quantity > self._max_qty
                or quantity * price > self._max_notional
                or (size > limit and size > held)
                or (gross_after > self._max_gross and gross_after > gross_exposure)
                or (abs(net_after) > self._max_net and abs(net_after) > abs(net_exposure))
                or (
                    self._ring_count == self._rate > 0
                    and ts_ns - self._ring[self._ring_head] < RATE_WINDOW_NS
                )
            ):
                breach = self._explain_breach(
                    order, price, position, new_position, gross_exposure, gross_after,
                    net_exposure, net_after,
                )  # fmt: skip
                return self._reject(order, ts_ns, *breach)
        self.accepted += 1
        rate = self._rate
        if rate:
            head = self._ring_head
            self._ring[head] = ts_ns
            self._ring_head = head + 1 if head + 1 < rate else 0
            if self._ring_count < rate:
                self._ring_count += 1
        return ACCEPTED

    def _explain_breach(
        self,
        order: Order,
        price: float,
        position: float,
        new_position: float,
        gross: float,
        gross_after: float,
        net: float = 0.0,
        net_after: float = 0.0,
    ) -> tuple[str, str]:
        """Name the first limit an order breaches (the hot path only knows that one is)."""
        symbol, quantity = order.symbol, order.quantity
        if quantity > self._max_qty:
            return RiskCode.MAX_ORDER_QUANTITY, (
                f"order quantity {_num(quantity)} exceeds max_order_quantity "
                f"{_num(self._max_qty)} for {symbol}"
            )
        notional = quantity * price
        if notional > self._max_notional:
            return RiskCode.MAX_ORDER_NOTIONAL, (
                f"order notional {_num(notional)} exceeds max_order_notional "
                f"{_num(self._max_notional)} for {symbol}"
            )
        limit = self._position_overrides.get(symbol, self._default_position)
        if limit < abs(new_position) > abs(position):
            return RiskCode.MAX_POSITION, (
                f"position {_num(new_position)} would exceed max_position {_num(limit)} "
                f"for {symbol}"
            )
        if self._max_gross < gross_after > gross:
            return RiskCode.MAX_GROSS_EXPOSURE, (
                f"gross exposure {_num(gross_after)} would exceed max_gross_exposure "
                f"{_num(self._max_gross)} ({symbol})"
            )
        if self._max_net < abs(net_after) > abs(net):
            return RiskCode.MAX_NET_EXPOSURE, (
                f"net exposure {_num(net_after)} would exceed max_net_exposure "
                f"{_num(self._max_net)} ({symbol})"
            )
        return RiskCode.ORDER_RATE, (
            f"{self._rate + 1} orders within 1 s would exceed max_orders_per_second "
            f"{self._rate} ({symbol})"
        )

    def _reject_by_mode(
        self, order: Order, ts_ns: int, position: float, new_position: float
    ) -> RiskDecision:
        if self.mode is RiskMode.HALTED:
            return self._reject(order, ts_ns, RiskCode.HALTED, self.halt_reason)
        if new_position * position < 0.0:
            what = f"flip position from {_num(position)} to {_num(new_position)}"
        else:
            what = f"increase |position| from {_num(abs(position))} to {_num(abs(new_position))}"
        return self._reject(order, ts_ns, RiskCode.REDUCE_ONLY, f"reduce-only: order would {what}")

    def _reject(self, order: Order, ts_ns: int, code: str, reason: str) -> RiskDecision:
        self.rejected_by_code[code] += 1
        self.rejections.append(
            RiskRejection(
                ts_ns=ts_ns, order_id=order.order_id, symbol=order.symbol, code=code, reason=reason
            )
        )
        return RiskDecision(False, reason, code)

    # ------------------------------------------------------------------ kill switch and modes

    def on_equity(
        self, equity: float, ts_ns: int, positions: Mapping[str, float]
    ) -> tuple[Order, ...]:
        """Update the peak and drawdown; on the event that trips the kill switch, flatten.

        Parameters
        ----------
        equity
            The account equity now (a non-finite value is ignored: it says nothing of drawdown).
        ts_ns
            Event time, integer ns (it stamps the flatten orders and their ids).
        positions
            Signed position per symbol; read only when the switch trips, so a live mapping costs
            nothing on the other calls.

        Returns
        -------
        tuple of Order
            The orders that flatten every open position, on the call that halts; else empty.
        """
        was_halted = self.mode is RiskMode.HALTED
        if math.isfinite(equity):
            self._observe_equity(equity)
            self._observe_day(equity, ts_ns)
        if self.mode is RiskMode.HALTED and not was_halted:
            return tuple(flatten_orders(positions, ts_ns))
        return ()

    @property
    def peak_equity(self) -> float:
        return self._peak

    def _observe_equity(self, equity: float) -> None:
        peak = self._peak
        if not equity <= peak:  # a new peak (also the first equity, while the peak is NaN)
            self._peak = equity
        elif peak > 0.0 and (peak - equity) / peak > self._max_drawdown:
            self._trip(peak, equity)

    def _observe_day(self, equity: float, ts_ns: int) -> None:
        day = ts_ns // DAY_NS
        if day != self._day:
            self._day, self._day_start = day, equity
            return
        start = self._day_start
        loss = (start - equity) / start if start > 0.0 else 0.0
        if loss > self._max_daily_loss and self.mode is not RiskMode.HALTED:
            self.halt(
                f"daily loss {loss:.3f} exceeded max_daily_loss {_num(self._max_daily_loss)}",
                limit="max_daily_loss",
                value=loss,
                threshold=self._max_daily_loss,
            )

    def check_fill_price(self, order: Order, decided_at: float, price: float, ts_ns: int) -> bool:
        """Whether ``order``, decided at price ``decided_at``, may fill at ``price``.

        Outside ``price_band`` the fill is refused and recorded (``price_band``): the caller
        cancels the order. Without a band, or without a decision price, every fill passes.
        """
        band = self.price_band
        if band is None or not decided_at > 0.0:
            return True
        if decided_at * (1.0 - band) <= price <= decided_at * (1.0 + band):
            return True
        self._reject(
            order,
            ts_ns,
            RiskCode.PRICE_BAND,
            f"fill price {_num(price)} of {order.symbol} is beyond {band:.0%} of the decision "
            f"price {_num(decided_at)}: order cancelled",
        )
        return False

    def _trip(self, peak: float, equity: float) -> None:
        # A peak at or below zero has no fractional drawdown, so callers only trip on peak > 0.
        if self.mode is not RiskMode.HALTED:
            dd = (peak - equity) / peak
            self.halt(
                f"drawdown {dd:.3f} exceeded max_drawdown {_num(self._max_drawdown)}",
                limit="max_drawdown",
                value=dd,
                threshold=self._max_drawdown,
            )

    def halt(
        self,
        why: str,
        *,
        limit: str = "",
        value: float | None = None,
        threshold: float | None = None,
    ) -> None:
        """Stop every order that opens or increases a position until :meth:`resume`.

        ``limit`` names the kill switch that tripped (``max_drawdown``, ``max_daily_loss``) at
        ``value`` past ``threshold``; without it the halt was asked for (an operator's)."""
        previous = self.mode
        self.mode = RiskMode.HALTED
        self.halt_reason = f"halted: {why}"
        # Logged here, where the mode changes: the kill switch trips once (guarded by the mode).
        fields = {"reason": self.halt_reason, "previous_mode": str(previous), "mode": "halted"}
        if limit:
            log.error(
                self.halt_reason,
                extra={"event": "kill_switch_tripped", **fields, "limit": limit,
                       "value": value, "threshold": threshold},
            )  # fmt: skip
        else:
            log.warning(self.halt_reason, extra={"event": "risk_halted", **fields})

    def set_reduce_only(self) -> None:
        """Accept only orders that reduce a position (without flipping it)."""
        previous = self.mode
        self._leave_halt()
        self.mode = RiskMode.REDUCE_ONLY
        log.warning(
            "reduce-only: only orders that reduce a position are accepted",
            extra={"event": "risk_reduce_only", "previous_mode": str(previous),
                   "mode": "reduce_only"},
        )  # fmt: skip

    def resume(self) -> None:
        """Return to normal trading; after a halt, drawdown is measured from the next equity."""
        previous, reason = self.mode, self.halt_reason
        self._leave_halt()
        self.mode = RiskMode.NORMAL
        log.warning(
            f"trading resumed (was {previous})",
            extra={"event": "risk_resumed", "previous_mode": str(previous), "mode": "normal",
                   "reason": reason},
        )  # fmt: skip

    def _leave_halt(self) -> None:
        if self.mode is RiskMode.HALTED:
            # Keeping the old peak would trip the switch again on the very next equity.
            self._peak = math.nan
            self.halt_reason = ""

    def stats(self) -> dict[str, object]:
        """Counts and mode, JSON-safe, for the tracker."""
        return {
            "mode": str(self.mode),
            "accepted": self.accepted,
            "rejected": sum(self.rejected_by_code.values()),
            "rejected_by_code": dict(self.rejected_by_code),
            "peak_equity": None if math.isnan(self._peak) else self._peak,
            "halt_reason": self.halt_reason,
        }


def flatten_orders(positions: Mapping[str, float], ts_ns: int) -> list[Order]:
    """Return the orders that close every open position, in symbol order.

    Ids are ``flatten-<symbol>-<ts_ns>``: the same positions and time give the same orders, so a
    store that dedupes by id never flattens twice. Zero and non-finite positions are skipped (a
    NaN position cannot be sized; the halt still stops new risk on that symbol).
    """
    orders = []
    for symbol in sorted(positions):
        quantity = positions[symbol]
        if quantity == 0.0 or not math.isfinite(quantity):
            continue
        orders.append(
            Order(
                order_id=f"flatten-{symbol}-{ts_ns}",
                symbol=symbol,
                side=Side.SELL if quantity > 0 else Side.BUY,
                quantity=abs(quantity),
                ts_event=ts_ns,
                strategy=FLATTEN_STRATEGY,
            )
        )
    return orders
