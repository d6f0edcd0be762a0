"""Market-making strategies: quote a bid and an ask around the mid from quotes and trades."""
