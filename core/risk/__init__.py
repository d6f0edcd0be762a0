"""Pre-trade risk: limits, the risk manager and its kill switch."""

from core.risk.limits import RiskLimits
from core.risk.manager import (
    ACCEPTED,
    RiskCode,
    RiskDecision,
    RiskManager,
    RiskMode,
    RiskRejection,
    flatten_orders,
)

__all__ = [
    "ACCEPTED",
    "RiskCode",
    "RiskDecision",
    "RiskLimits",
    "RiskManager",
    "RiskMode",
    "RiskRejection",
    "flatten_orders",
]
