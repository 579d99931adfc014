"""A camera fleet on NATS JetStream: N ``serve`` replicas sharing one cameras file.

Leases in a JetStream key-value bucket decide which replica runs which camera
(leases.py, replica.py); any replica serves Subscribe for any session through the
shared event store (follow.py); StopSession reaches the owner over NATS.
"""

from __future__ import annotations

from .follow import follow_store
from .leases import BUCKET, DEFAULT_TTL
from .replica import FleetOptions, FleetReplica, default_replica_id, share_of

__all__ = ["BUCKET", "DEFAULT_TTL", "FleetOptions", "FleetReplica", "default_replica_id", "follow_store", "share_of"]
