"""The distributor actor: each workflow's state machine, release by priority, retries, timeouts, the end."""

from ._actor import Distributor
from ._decide import retry_delay
from ._state import DistributorState

__all__ = ["Distributor", "DistributorState", "retry_delay"]
