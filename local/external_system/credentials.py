"""Per-client bearer tokens, kept like cloud access keys: at most two active, oldest dropped first.

Only sha256 digests are kept, so no state dump, repr or traceback can ever show a token. A client
with no active token needs no credentials at all, which keeps unauthenticated setups working.
"""

import hashlib
import hmac
import threading

from external_system.models import CredentialFaults, Credentials

# Two, so a rotation can register the new token and verify it before the old one is dropped.
MAX_ACTIVE = 2
FINGERPRINT_CHARS = 12


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; the scheme is case-insensitive."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class Keyring:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Digests per client, oldest first.
        self._active: dict[str, list[str]] = {}
        self._refuse_new: set[str] = set()

    def reset(self) -> None:
        with self._lock:
            self._active = {}
            self._refuse_new = set()

    def replace(self, client_id: str, tokens: list[str]) -> Credentials:
        """Admin: these tokens become the active ones, whatever the credential faults say."""
        digests = list(dict.fromkeys(_digest(token) for token in tokens))[-MAX_ACTIVE:]
        with self._lock:
            self._active[client_id] = digests
            return _view(client_id, digests)

    def clear(self, client_id: str) -> Credentials:
        with self._lock:
            self._active.pop(client_id, None)
        return _view(client_id, [])

    def view(self, client_id: str) -> Credentials:
        with self._lock:
            return _view(client_id, self._active.get(client_id, []))

    def set_faults(self, client_id: str, *, refuse_new: bool) -> CredentialFaults:
        with self._lock:
            if refuse_new:
                self._refuse_new.add(client_id)
            else:
                self._refuse_new.discard(client_id)
        return CredentialFaults(client_id=client_id, refuse_new=refuse_new)

    def admits(self, client_id: str, authorization: str | None) -> bool:
        token = bearer_token(authorization)
        presented = _digest(token) if token is not None else ""
        with self._lock:
            active = self._active.get(client_id)
            if not active:
                return True
            # Every digest is compared, in constant time, so timing tells nothing either.
            matches = [hmac.compare_digest(presented, digest) for digest in active]
        return any(matches)

    def register(self, client_id: str, token: str) -> tuple[bool, Credentials]:
        """Add a token, dropping the oldest beyond two; False if it was already active.

        Under ``refuse_new`` the answer is the one a success would give, but nothing changes: the
        provider accepted the key and never propagated it, which only a call with it reveals.
        """
        digest = _digest(token)
        with self._lock:
            active = self._active.get(client_id, [])
            if digest in active:
                return False, _view(client_id, active)
            after = [*active, digest][-MAX_ACTIVE:]
            if client_id not in self._refuse_new:
                self._active[client_id] = after
            return True, _view(client_id, after)


def _view(client_id: str, digests: list[str]) -> Credentials:
    return Credentials(
        client_id=client_id,
        active=len(digests),
        fingerprints=[digest[:FINGERPRINT_CHARS] for digest in digests],
    )
