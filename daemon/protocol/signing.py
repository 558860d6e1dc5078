"""Ed25519 signatures on enrollment messages.

The enrollment server signs every record and tombstone; devices hold only the public
key and drop anything that does not verify. The signature covers the exact bytes of
the topic and of the record (never QoS, retain flags or message ids), so a record
cannot be moved to another site, person or model, and nothing is re-serialised:

    message = b"facegate-record-v1\\0" + topic (UTF-8) + b"\\0" + body
    payload = body without its final "}"  +  ,"kid":"<16 hex>","sig":"<86 base64url>"}

``body`` is the record's compact JSON object. The payload is still one JSON object, and
the fixed-length suffix can be split off and checked *before* any JSON is parsed.
``kid`` (the first 8 bytes of SHA-256 of the raw public key, in hex) only picks the key;
it is not trusted for anything else.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

CONTEXT = b"facegate-record-v1\x00"
PRIVATE_KEY_FILE = "enroll-signing.key"
PUBLIC_KEY_FILE = "enroll-signing.pub"
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_TRUSTED_KEYS = 8
_SUFFIX = re.compile(rb',"kid":"([0-9a-f]{16})","sig":"([A-Za-z0-9_-]{86})"\}\Z')
_PEM_PUBLIC = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)

# Reason codes (health-record keys, see daemon/protocol/records.py).
UNSIGNED = "unsigned"            # no signature where one is required
UNKNOWN_KEY = "unknown_key"      # signed, but by a key this device does not trust
BAD_SIGNATURE = "bad_signature"  # forged or tampered: the signature does not verify


class SignatureError(ValueError):
    """A message whose signature is missing or wrong; ``reason`` is a short stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class KeyFileError(ValueError):
    """A key file that is missing, unreadable or not an Ed25519 key."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signed_message(topic: str, body: bytes) -> bytes:
    # MQTT forbids U+0000 in topics, so the separator is unambiguous.
    return CONTEXT + topic.encode("utf-8") + b"\x00" + body


def sign_payload(private_key: Ed25519PrivateKey, topic: str, body: bytes) -> bytes:
    """Append the signature of ``body`` (a compact, non-empty JSON object) on ``topic``."""
    if not (body.startswith(b"{") and body.endswith(b"}") and len(body) > 2):
        raise ValueError("body must be a non-empty JSON object")
    signature = private_key.sign(signed_message(topic, body))
    encoded = base64.urlsafe_b64encode(signature).rstrip(b"=")
    return body[:-1] + b',"kid":"' + key_id(private_key.public_key()).encode() + b'","sig":"' + encoded + b'"}'


def split_signature(payload: bytes) -> tuple[bytes, str, bytes] | None:
    """(body, kid, signature) if the payload ends with a well-formed signature, else None.
    Only the canonical base64 spelling counts: the last character has 4 unused bits, and
    a second spelling of the same signature would let a copy pass as a new message."""
    match = _SUFFIX.search(payload)
    if match is None:
        return None
    signature = base64.urlsafe_b64decode(match.group(2) + b"==")
    if base64.urlsafe_b64encode(signature).rstrip(b"=") != match.group(2):
        return None
    return payload[:match.start()] + b"}", match.group(1).decode(), signature


@dataclass(frozen=True, eq=False)
class Trust:
    """What a device accepts: records signed by one of ``keys`` (kid -> key). With
    ``allow_unsigned`` (development only) records without a signature pass too."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    allow_unsigned: bool = False

    @classmethod
    def of(cls, *public_keys: Ed25519PublicKey, allow_unsigned: bool = False) -> "Trust":
        return cls({key_id(k): k for k in public_keys}, allow_unsigned)

    def body_of(self, topic: str, payload: bytes) -> bytes:
        """The verified record body of a payload, or SignatureError. Runs before any parsing."""
        parts = split_signature(payload)
        if parts is None:
            if self.allow_unsigned:
                return payload
            raise SignatureError(UNSIGNED, "not signed, or the signature is malformed (devices accept only "
                                           "records signed by the enrollment server's key)")
        body, kid, signature = parts
        key = self.keys.get(kid)
        if key is None:
            if self.allow_unsigned and not self.keys:
                return body  # development mode without any key: the signature cannot be checked
            raise SignatureError(UNKNOWN_KEY, f"signed by key {kid}, which this device does not trust "
                                              f"(trusted: {', '.join(self.keys) or 'none'})")
        try:
            key.verify(signature, signed_message(topic, body))
        except InvalidSignature:
            raise SignatureError(BAD_SIGNATURE, f"signature by key {kid} does not verify "
                                                "(forged, tampered, or moved to another topic)") from None
        return body


# ---------------------------------------------------------------- key files

def _read_small(path: Path, what: str) -> bytes:
    try:
        if not path.is_file():
            raise KeyFileError(f"{what} {path}: not found (create one with `facegate keygen --out DIR`)")
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{what} {path}: too large to be a key file")
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{what} {path}: cannot read ({exc.strerror or exc})") from exc


def load_public_keys(path: str | Path) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key (PEM) in a file: one normally, two during a key rotation."""
    path = Path(path)
    data = _read_small(path, "public key")
    blocks = _PEM_PUBLIC.findall(data)
    if not blocks:
        raise KeyFileError(f"public key {path}: no PEM public key in it (expected the .pub file "
                           "written by `facegate keygen`)")
    if len(blocks) > MAX_TRUSTED_KEYS:
        raise KeyFileError(f"public key {path}: {len(blocks)} keys, at most {MAX_TRUSTED_KEYS}")
    keys = []
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError as exc:
            raise KeyFileError(f"public key {path}: unreadable PEM ({exc})") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"public key {path}: not an Ed25519 key ({type(key).__name__})")
        keys.append(key)
    return keys


def load_trust(public_key_path: str, allow_unsigned: bool) -> Trust:
    """The device's trust settings from the config (enrollment.public_key / allow_unsigned)."""
    keys = load_public_keys(public_key_path) if public_key_path else []
    return Trust.of(*keys, allow_unsigned=allow_unsigned)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    path = Path(path)
    data = _read_small(path, "signing key")
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("signing key %s is readable by other users; chmod 600 it", path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"signing key {path}: unreadable or passphrase-protected PEM ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"signing key {path}: not an Ed25519 key ({type(key).__name__})")
    return key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never overwrite a key; the mode is set at creation, so the private key is
    # never readable by others, not even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it; make it exactly `mode`


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    key_id: str


def generate_keypair(out_dir: str | Path) -> KeyPair:
    """Create ``enroll-signing.key`` (mode 0600) and ``enroll-signing.pub`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path, public_path = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    for existing in (private_path, public_path):
        if existing.exists():
            raise KeyFileError(f"{existing} already exists; refusing to overwrite a key "
                               "(move it away first, see docs/security.md on key rotation)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private_path, private_pem, 0o600)
    _write_new(public_path, public_pem, 0o644)
    return KeyPair(private_path, public_path, key_id(key.public_key()))
