"""Macro strategies: rate policy, liquidity, long-horizon trend and regime models.

They consume a time-ordered stream of :class:`core.model.MacroPoint` and :class:`core.model.Bar`
events (see :mod:`core.data.macro` for the timing convention) and decide at bars.
"""
