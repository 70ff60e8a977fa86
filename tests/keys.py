"""API keys for tests: an owner and a viewer of project `demo`, and a stranger to it."""

from __future__ import annotations

import json

from app.api_keys import Role, new_key

KEYS = {name: new_key(name, role, projects) for name, role, projects in [
    ("owner", Role.SUBMITTER, ["demo"]),
    ("viewer", Role.READER, ["demo"]),
    ("stranger", Role.SUBMITTER, ["other"]),
]}
SECRET = {name: key for name, (key, _) in KEYS.items()}
KEYS_JSON = json.dumps({"keys": [entry for _, entry in KEYS.values()]})
