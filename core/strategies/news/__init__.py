"""News-driven strategies: tweets and daily bars merged in publication order (strategic tier)."""
