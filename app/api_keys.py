"""API keys: who may call, on which projects, with which role.

Keys are configured outside the code (`OPQUEUE_API_KEYS_FILE`, or the same JSON in
`OPQUEUE_API_KEYS`) and stored only as SHA-256 digests; a presented key is compared with
every configured digest in constant time. `python -m app.new_api_key` mints a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.config import Settings

KEY_PREFIX = "opq_"


class Role(StrEnum):
    """What a key may do on its projects."""

    READER = "reader"  # get, list, wait
    SUBMITTER = "submitter"  # also run, cancel, delete


@dataclass(frozen=True)
class ApiKey:
    """One configured key (its digest, never the key itself)."""

    id: str
    digest: bytes
    role: Role
    projects: frozenset[str]
    rate_per_second: int | None = None  # None: the deployment's default

    def may(self, role: Role) -> bool:
        """True if this key's role includes `role`."""
        return self.role is Role.SUBMITTER or role is Role.READER

    def grants(self, project: str) -> bool:
        """True if this key may act in `project`."""
        return project in self.projects or "*" in self.projects


def digest(key: str) -> bytes:
    """The SHA-256 digest stored for `key` (keys are random, so no salt or stretching)."""
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    """The configured keys."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys = tuple(keys)

    @property
    def empty(self) -> bool:
        """True when no key is configured (development mode)."""
        return not self.keys

    def identify(self, presented: str) -> ApiKey | None:
        """The key matching `presented`, comparing with every digest in constant time."""
        wanted = digest(presented)
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, wanted):
                found = key
        return found

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Keys from the keys file, or from the inline JSON; none if neither is set."""
        if settings.api_keys_file:
            text = Path(settings.api_keys_file).read_text()
        elif settings.api_keys:
            text = settings.api_keys
        else:
            return cls(())
        return cls.parse(text)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """`{"keys": [{"id", "sha256", "role", "projects", "ratePerSecond"?}, ...]}`."""
        try:
            entries = json.loads(text)["keys"]
            return cls(_entry(entry) for entry in entries)
        except (ValueError, KeyError, TypeError) as exc:
            # Never echo the file: it may hold something secret by mistake.
            raise ValueError(f"the API keys configuration is invalid ({type(exc).__name__}: "
                             "expected {\"keys\": [{\"id\", \"sha256\", \"role\", "
                             "\"projects\"}]})") from None


def _entry(entry: dict[str, Any]) -> ApiKey:
    rate = entry.get("ratePerSecond")
    return ApiKey(id=str(entry["id"]), digest=bytes.fromhex(entry["sha256"]),
                  role=Role(entry["role"]), projects=frozenset(entry["projects"]),
                  rate_per_second=None if rate is None else int(rate))


def new_key(key_id: str, role: Role, projects: list[str]) -> tuple[str, dict[str, Any]]:
    """A fresh random key and the keys-file entry that grants it."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = {"id": key_id, "sha256": digest(key).hex(), "role": role.value,
             "projects": projects}
    return key, entry
