"""Connector credentials encrypted at rest, as ML Commons' ``EncryptorImpl`` does with its master key.

The node's key (32 random bytes) lives in ``<data>/ml-credential.key`` (mode 0600), apart from the
SQLite file, so a copy of the database alone does not reveal a credential. Values are AES-256-GCM,
stored as ``oskit-enc:v1:<base64 nonce+ciphertext>``; the APIs never return them (see
``connector.public_connector``).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from kit.node.errors import ApiError

__all__ = ["CredentialCipher"]

PREFIX = "oskit-enc:v1:"


class CredentialCipher:
    def __init__(self, data_dir: Path | None) -> None:
        self._key = _load_or_create_key(data_dir / "ml-credential.key") if data_dir is not None else os.urandom(32)

    def _aead(self) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self._key)

    def encrypt(self, value: Any) -> Any:
        if not isinstance(value, str) or value.startswith(PREFIX):
            return value
        nonce = os.urandom(12)
        blob = nonce + self._aead().encrypt(nonce, value.encode("utf-8"), None)
        return PREFIX + base64.b64encode(blob).decode("ascii")

    def decrypt(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.startswith(PREFIX):
            return value  # written before credentials were encrypted
        from cryptography.exceptions import InvalidTag

        blob = base64.b64decode(value[len(PREFIX):])
        try:
            return self._aead().decrypt(blob[:12], blob[12:], None).decode("utf-8")
        except InvalidTag:
            raise ApiError(500, "illegal_state_exception", "a connector credential cannot be decrypted with this "
                           "node's key (ml-credential.key was replaced?); update the connector's credential") from None

    def seal(self, connector: dict[str, Any] | None) -> dict[str, Any] | None:
        """The connector as stored: every credential value encrypted."""
        if not isinstance(connector, dict) or not isinstance(connector.get("credential"), dict):
            return connector
        return {**connector, "credential": {k: self.encrypt(v) for k, v in connector["credential"].items()}}

    def open(self, connector: dict[str, Any] | None) -> dict[str, Any] | None:
        """The connector as a predict call uses it: credentials in clear, in memory only."""
        if not isinstance(connector, dict) or not isinstance(connector.get("credential"), dict):
            return connector
        return {**connector, "credential": {k: self.decrypt(v) for k, v in connector["credential"].items()}}


def _load_or_create_key(path: Path) -> bytes:
    try:
        return base64.b64decode(path.read_bytes())
    except FileNotFoundError:
        pass
    key = os.urandom(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(key))
    return key
