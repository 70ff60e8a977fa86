"""API keys: who may call, on which projects, with which role.

Keys are configured outside the code (`OPQUEUE_API_KEYS_FILE`, or the same JSON in
`OPQUEUE_API_KEYS`) and stored only as SHA-256 digests; a presented key is compared with
every configured digest in constant time. `python -m app.new_api_key` mints a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from core.config import Settings
from core.errors import field_violations
from core.names import PROJECT_ID

KEY_PREFIX = "opq_"
KEY_ID = re.compile(r"[A-Za-z0-9._@-]{1,64}\Z")


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

    def __init__(self, keys: Iterable[ApiKey], configured: bool = True) -> None:
        self.keys = tuple(keys)
        # False only when no keys file or inline keys are set at all (then anonymous access
        # is possible, if switched on); an empty list is a configuration admitting no one.
        self.configured = configured

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
            return cls((), configured=False)
        return cls.parse(text)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """`{"keys": [{"id", "sha256", "role", "projects", "ratePerSecond"?}, ...]}`.

        ValueError naming the first bad entry (by position and id, never by digest) and
        what is wrong with it; an empty list is a valid configuration that admits no one.
        """
        try:
            document = json.loads(text)
        except ValueError:
            raise ValueError("the API keys configuration is not JSON") from None
        if not isinstance(document, dict) or set(document) != {"keys"} or not isinstance(
                document["keys"], list):
            raise ValueError('the API keys configuration must be {"keys": [...]} '
                             "and nothing else")
        keys = [_entry(index, entry) for index, entry in enumerate(document["keys"])]
        ids = [key.id for key in keys]
        for index, key_id in enumerate(ids):
            if key_id in ids[:index]:
                raise ValueError(f"API keys entry {index} ({key_id!r}): the id is used twice")
        return cls(keys)


class _EntrySchema(Schema):
    """One keys-file entry; unknown fields are an error, so a typo never grants silently."""

    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(KEY_ID))
    sha256 = fields.String(required=True, validate=validate.Regexp(r"[0-9a-fA-F]{64}\Z"))
    role = fields.String(required=True, validate=validate.OneOf([role.value for role in Role]))
    projects = fields.List(
        fields.String(validate=validate.Regexp(rf"(\*|{PROJECT_ID.pattern})\Z")),
        required=True, validate=validate.Length(min=1))
    rate_per_second = fields.Integer(data_key="ratePerSecond", strict=True,
                                     validate=validate.Range(min=0))


def _entry(index: int, entry: Any) -> ApiKey:
    key_id = entry.get("id") if isinstance(entry, dict) else None
    shown = isinstance(key_id, str) and KEY_ID.match(key_id)  # else it may be anything
    named = f"API keys entry {index}" + (f" ({key_id!r})" if shown else "")
    if not isinstance(entry, dict):
        raise ValueError(f"{named} must be a JSON object")
    try:
        loaded = _EntrySchema().load(entry)
    except ValidationError as exc:
        # Names the fields only: a value may be something secret pasted by mistake.
        problems = "; ".join(f"{name}: {messages}" for name, messages in
                             sorted(field_violations(exc.messages).items()))
        raise ValueError(f"{named} is invalid: {problems}") from None
    return ApiKey(id=loaded["id"], digest=bytes.fromhex(loaded["sha256"]),
                  role=Role(loaded["role"]), projects=frozenset(loaded["projects"]),
                  rate_per_second=loaded.get("rate_per_second"))


def new_key(key_id: str, role: Role, projects: list[str]) -> tuple[str, dict[str, Any]]:
    """A fresh random key and the keys-file entry that grants it."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = {"id": key_id, "sha256": digest(key).hex(), "role": role.value,
             "projects": projects}
    return key, entry
