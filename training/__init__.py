"""Training mode for pendamping: guided lessons in the cashier app, each on its own sandbox network."""
