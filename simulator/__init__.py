"""Command-line shell around the pure consensus simulator (it measures wall time, so it lives
outside ``cybermesh.protocol``, which may not read clocks)."""
