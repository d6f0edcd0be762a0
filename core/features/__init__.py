"""Feature sets for learned strategies: one vectorized form for training, one O(1) form for live."""
