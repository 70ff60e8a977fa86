"""The HTTP server process (the Procfile's `web`): `python -m web`."""
