"""The deterministic consensus simulator (pure: seeded by an explicit :class:`SimRng`).

Many :class:`~cybermesh.protocol.consensus.core.ConsensusCore` instances run in one process
over a simulated network; invariants are checked after every step. Nothing here reads a clock
or the ``random`` module: every choice comes from a :class:`SimRng` built from the seed, so a
seed replays exactly. The command-line runner (which measures wall time) lives outside the
protocol package, in ``simulator/run.py``.
"""
