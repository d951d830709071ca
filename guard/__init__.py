"""The security manager's library, below the actors: Ed25519 identities that sign what Ymera's
actors emit and the store writer's chain checkpoints, and the keyring readers check them
with; the input sanitiser and the output scanner (secrets, personal data, harmful content);
API-key encryption; rate limits shared by every process."""

from ._identity import Identity, KeyFileError, id_key, key_id, nkey_of, verify
from ._issue import BLOCKING, Issue
from ._keyring import Keyring, mac_keys
from ._ratelimit import InvalidRateLimit, RateDecision, RateLimiter, check_rate_limit
from ._sanitize import Sanitized, sanitize_input, scan_input
from ._scan import Finding, ScanResult, scan_output
from ._users import LOCAL_CLIENT, authorization, client_identity, make_identities, nats_users
from ._vault import decrypt_api_key, encrypt_api_key

__all__ = [
    "BLOCKING",
    "LOCAL_CLIENT",
    "Finding",
    "Identity",
    "InvalidRateLimit",
    "Issue",
    "KeyFileError",
    "Keyring",
    "RateDecision",
    "RateLimiter",
    "Sanitized",
    "ScanResult",
    "authorization",
    "check_rate_limit",
    "client_identity",
    "decrypt_api_key",
    "encrypt_api_key",
    "id_key",
    "key_id",
    "mac_keys",
    "make_identities",
    "nats_users",
    "nkey_of",
    "sanitize_input",
    "scan_input",
    "scan_output",
    "verify",
]
