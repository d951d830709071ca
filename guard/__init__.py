"""Security primitives below the actors (no NATS): Ed25519 identities that sign what Ymera
keeps. Issue 10 builds it in steps: today the store writer's signed chain checkpoints."""

from ._identity import Identity, KeyFileError, id_key, key_id, verify

__all__ = ["Identity", "KeyFileError", "id_key", "key_id", "verify"]
