"""The store: one SQLite database per project (WAL, busy timeout, named migrations) and all its SQL."""
