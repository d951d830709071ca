"""NATS for Ymera: the connection, the YMERA stream, consumers and the embedded server."""

from ._access import ACTOR_ROLES, Credentials, User, authorization_block, permissions
from ._attest import ATTEST_SECONDS, Attester
from ._blobs import BLOB_BUCKET, BlobStore
from ._connect import connect
from ._connection import Bus
from ._errors import BusError, BusUnavailable, ConsumerConfigError, Fenced, ServerStartError
from ._limits import RATE_BUCKET, RateWindows
from ._local import Access, connect_when_up, open_bus, open_local
from ._publish import PubAck
from ._pull import LINGER_BELOW, PullBatches, deliveries, resume, stream_seq
from ._reading import ConsumerState, Delivery, Follower, StreamState, Subscription, ack, nak, pending_after
from ._seal import SEAL_HEADER, Keyring, MacKeys, SealCheck, Signer, Unattested, UntrustedEvent, leaf, seal, seal_of
from ._server import EmbeddedServer, find_binary, free_port, reload_running, running_server
from ._snapshots import SNAPSHOT_BUCKET, SnapshotStore
from ._stream import (
    STREAM,
    ConsumerPolicy,
    StreamPolicy,
    check_consumer,
    consumer_config,
    ensure_stream,
    fit_consumer,
    redelivery_span,
    set_retention,
    stream_policy,
)
from ._worker import Worker, run_worker

__all__ = [
    "ACTOR_ROLES",
    "ATTEST_SECONDS",
    "BLOB_BUCKET",
    "LINGER_BELOW",
    "RATE_BUCKET",
    "SEAL_HEADER",
    "SNAPSHOT_BUCKET",
    "STREAM",
    "Access",
    "Attester",
    "BlobStore",
    "Bus",
    "BusError",
    "BusUnavailable",
    "ConsumerConfigError",
    "ConsumerPolicy",
    "ConsumerState",
    "Credentials",
    "Delivery",
    "EmbeddedServer",
    "Fenced",
    "Follower",
    "Keyring",
    "MacKeys",
    "PubAck",
    "PullBatches",
    "RateWindows",
    "SealCheck",
    "ServerStartError",
    "Signer",
    "SnapshotStore",
    "StreamPolicy",
    "StreamState",
    "Subscription",
    "Unattested",
    "UntrustedEvent",
    "User",
    "Worker",
    "ack",
    "authorization_block",
    "check_consumer",
    "connect",
    "connect_when_up",
    "consumer_config",
    "deliveries",
    "ensure_stream",
    "find_binary",
    "fit_consumer",
    "free_port",
    "leaf",
    "nak",
    "open_bus",
    "open_local",
    "pending_after",
    "permissions",
    "redelivery_span",
    "reload_running",
    "resume",
    "run_worker",
    "running_server",
    "seal",
    "seal_of",
    "set_retention",
    "stream_policy",
    "stream_seq",
]
