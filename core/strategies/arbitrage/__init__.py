"""Arbitrage strategies (fast tier): funding carry, lead-lag latency, triangular FX."""
