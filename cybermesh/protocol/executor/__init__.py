"""The deterministic executor: pure reducers from (state, block) to (state', events).

See :func:`~cybermesh.protocol.executor.apply.apply_block` and docs/transactions.md.
"""

from cybermesh.protocol.executor.apply import ExecutorError, apply_block
from cybermesh.protocol.executor.context import BlockContext
from cybermesh.protocol.executor.genesis import active_validator_set, genesis_state
from cybermesh.protocol.executor.params import SCALE_PPM, ExecutorParameters
from cybermesh.protocol.executor.policy import Decision, effective_decision
from cybermesh.protocol.executor.root import StateRootTracker, state_root
from cybermesh.protocol.executor.state import State

__all__ = [
    "SCALE_PPM",
    "BlockContext",
    "Decision",
    "ExecutorError",
    "ExecutorParameters",
    "State",
    "StateRootTracker",
    "active_validator_set",
    "apply_block",
    "effective_decision",
    "genesis_state",
    "state_root",
]
