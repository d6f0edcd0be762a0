"""A live dashboard of a running core, served on loopback: ``strategy-engine dashboard``."""

from strategy_engine.dashboard.server import DashboardServer, start_dashboard
from strategy_engine.dashboard.state import DashboardReader

__all__ = ["DashboardReader", "DashboardServer", "start_dashboard"]
