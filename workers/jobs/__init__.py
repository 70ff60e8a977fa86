"""Built-in jobs."""
