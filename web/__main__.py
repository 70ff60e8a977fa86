"""`python -m web`: the Procfile's `web` process, the API on Granian (web/server.py)."""

from core.config import Settings
from web.server import server

if __name__ == "__main__":  # not in the worker processes, which import this module again
    server(Settings.from_env()).serve()
