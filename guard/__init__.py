"""Security primitives below the actors (no NATS): Ed25519 identities that sign what Ymera's
actors emit and the store writer's chain checkpoints, and the keyring readers check them with."""

from ._identity import Identity, KeyFileError, id_key, key_id, verify
from ._keyring import Keyring

__all__ = ["Identity", "KeyFileError", "Keyring", "id_key", "key_id", "verify"]
