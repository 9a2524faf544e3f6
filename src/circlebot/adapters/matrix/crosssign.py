"""Cross-signing (Matrix spec, "Cross-signing"): the bot's master, self-signing and user-signing keys (ed25519),
uploaded once with ``/keys/device_signing/upload``, and the bot's device signed by the self-signing key with
``/keys/signatures/upload``, so that clients which only trust devices their owner verified (Element, MSC4153)
share room keys with it and show its messages as from a verified device. nio has no cross-signing.

Signatures are made by matrix-org's signedjson (canonical JSON without ``signatures`` and ``unsigned``, as the
spec's "Signing JSON" says) with PyNaCl's ed25519 keys.

The three private keys come from one 32-byte secret, the *recovery key* (keyed BLAKE2b, as libsodium's key
derivation does, one derivation per key). The secret is kept in the crypto store (``cross-signing.json``,
readable by its owner only); given back in an environment variable on a new host it restores the same keys.
It is circlebot's own recovery key, not Element's Secure Backup key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nacl.encoding
import nacl.hash
import nacl.signing
from signedjson.key import (
    decode_signing_key_base64,
    decode_verify_key_base64,
    encode_verify_key_base64,
    get_verify_key,
)
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey

KEYS_FILE = "cross-signing.json"
USAGES = ("master", "self_signing", "user_signing")
_PERSON = {"master": b"circlebot-msk", "self_signing": b"circlebot-ssk", "user_signing": b"circlebot-usk"}


class CrossSigningError(RuntimeError):
    """Cross-signing could not be set up or used; the message says what to do."""


@dataclass(frozen=True)
class CrossSigningKeys:
    """The bot's three cross-signing keys, all derived from `secret` (the recovery key)."""

    secret: bytes

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        return cls(os.urandom(32))

    @classmethod
    def from_recovery_key(cls, text: str) -> CrossSigningKeys:
        compact = "".join(text.split())
        try:
            secret = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        except (ValueError, binascii.Error):
            secret = b""
        if len(secret) != 32:
            raise CrossSigningError("the recovery key is not one circlebot made (32 bytes of unpadded base64)")
        return cls(secret)

    @property
    def recovery_key(self) -> str:
        return _unpadded(self.secret)

    def signing_key(self, usage: str) -> SigningKey:
        """The ed25519 signing key for `usage`, its version being its public key (the spec's key id)."""
        seed = nacl.hash.blake2b(b"", digest_size=32, key=self.secret, person=_PERSON[usage],
                                 encoder=nacl.encoding.RawEncoder)
        public = _unpadded(bytes(nacl.signing.SigningKey(seed).verify_key))
        return decode_signing_key_base64("ed25519", public, _unpadded(seed))

    def public(self, usage: str) -> str:
        return encode_verify_key_base64(get_verify_key(self.signing_key(usage)))

    def key_objects(self, user_id: str) -> dict[str, dict[str, Any]]:
        """The body of ``/keys/device_signing/upload``: each key, the sub-keys signed by the master key."""
        master = self.signing_key("master")
        out: dict[str, dict[str, Any]] = {}
        for usage in USAGES:
            public = self.public(usage)
            obj: dict[str, Any] = {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}
            out[f"{usage}_key"] = obj if usage == "master" else sign_json(obj, user_id, master)
        return out


def _unpadded(data: bytes) -> str:
    """Unpadded base64, the spec's encoding of keys and signatures."""
    return base64.b64encode(data).decode().rstrip("=")


def load_keys(store: Path, user_id: str) -> CrossSigningKeys | None:
    """The keys kept in the crypto store for `user_id`, or None."""
    try:
        data = json.loads((store / KEYS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("user_id") != user_id or not isinstance(data.get("secret"), str):
        return None
    return CrossSigningKeys.from_recovery_key(data["secret"])


def save_keys(store: Path, user_id: str, keys: CrossSigningKeys) -> None:
    """Keep the keys in the crypto store, readable by its owner only."""
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = store / (KEYS_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"user_id": user_id, "secret": keys.recovery_key}, f)
    os.replace(tmp, store / KEYS_FILE)


def _public_of(key_object: Mapping[str, Any] | None) -> str | None:
    keys = (key_object or {}).get("keys") or {}
    return next(iter(keys.values()), None) if isinstance(keys, dict) and keys else None


def device_signed_by(device: Mapping[str, Any], user_id: str, public: str) -> bool:
    """Whether the device's keys carry a valid signature by the ed25519 key `public` of `user_id`."""
    try:
        verify_signed_json(dict(device), user_id, decode_verify_key_base64("ed25519", public, public))
    except SignatureVerifyException:
        return False
    return True


class Homeserver:
    """The few client-API calls cross-signing needs (nio has none of them), with the bot's access token."""

    def __init__(self, base_url: str, user_id: str, access_token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self._headers = {"Authorization": f"Bearer {access_token}"}

    async def _post(self, path: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
                    session.post(f"{self.base_url}/_matrix/client/v3{path}", json=body, headers=self._headers) as r):
            data = await r.json(content_type=None)
            return r.status, data if isinstance(data, dict) else {}

    async def query(self) -> dict[str, Any]:
        """``/keys/query`` for the bot's own user: its devices and its cross-signing keys."""
        status, data = await self._post("/keys/query", {"device_keys": {self.user_id: []}})
        if status != 200:
            raise CrossSigningError(f"the homeserver refused /keys/query ({status} {data.get('errcode', '')})")
        return data

    def master_on_server(self, query: Mapping[str, Any]) -> str | None:
        return _public_of((query.get("master_keys") or {}).get(self.user_id))

    async def upload_keys(self, keys: CrossSigningKeys, password: Callable[[], Awaitable[str | None]]) -> None:
        """Upload the three keys. The first upload needs no authentication; replacing keys needs the account's
        password (user-interactive authentication, ``m.login.password``), asked only then."""
        body: dict[str, Any] = keys.key_objects(self.user_id)
        status, data = await self._post("/keys/device_signing/upload", body)
        if status == 401 and "session" in data:
            flows = [f.get("stages") for f in data.get("flows") or [] if isinstance(f, dict)]
            if ["m.login.password"] not in flows:
                raise CrossSigningError(f"the homeserver wants another kind of authentication ({flows}); "
                                        "circlebot can only give the account's password")
            secret = await password()
            if not secret:
                raise CrossSigningError("replacing the cross-signing keys needs the bot account's password")
            body["auth"] = {"type": "m.login.password", "session": data["session"], "password": secret,
                            "identifier": {"type": "m.id.user", "user": self.user_id}}
            status, data = await self._post("/keys/device_signing/upload", body)
        if status != 200:
            raise CrossSigningError(f"the homeserver refused the cross-signing keys ({status} "
                                    f"{data.get('errcode', '')}: {data.get('error', '')})")

    async def sign_device(self, keys: CrossSigningKeys, device_id: str) -> bool:
        """Sign the device with the self-signing key unless it is signed already; True when it signed now."""
        query = await self.query()
        device = ((query.get("device_keys") or {}).get(self.user_id) or {}).get(device_id)
        if not isinstance(device, dict):
            raise CrossSigningError(f"device {device_id} has no keys on the homeserver yet")
        ssk = keys.signing_key("self_signing")
        if device_signed_by(device, self.user_id, keys.public("self_signing")):
            return False
        device.pop("unsigned", None)
        signed = sign_json({k: v for k, v in device.items() if k != "signatures"}, self.user_id, ssk)
        status, data = await self._post("/keys/signatures/upload", {self.user_id: {device_id: signed}})
        failures = data.get("failures") or {}
        if status != 200 or failures:
            raise CrossSigningError(f"the homeserver refused the device's signature ({status} {failures or data})")
        return True
