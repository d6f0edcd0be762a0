"""Learned strategies: models fitted offline, applied bar by bar through a predictor."""
