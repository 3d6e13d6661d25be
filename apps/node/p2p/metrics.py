"""Prometheus metrics of the peer layer, labelled by our node id (several nodes may share one
process in tests and simulations)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REFUSED_CONNECTIONS = Counter(
    "cybermesh_p2p_refused_connections_total",
    "Peer connections refused or dropped before carrying messages, by reason.",
    ["node", "reason"])
FRAMES_RECEIVED = Counter(
    "cybermesh_p2p_frames_received_total", "Frames accepted from peers, by topic.",
    ["node", "topic"])
FRAMES_SENT = Counter(
    "cybermesh_p2p_frames_sent_total", "Frames queued to peers, by topic.", ["node", "topic"])
FRAMES_DROPPED = Counter(
    "cybermesh_p2p_frames_dropped_total",
    "Frames dropped, by topic and cause (rate_limited, send_queue_full, not_connected).",
    ["node", "topic", "cause"])
BYTES_RECEIVED = Counter(
    "cybermesh_p2p_received_bytes_total", "Payload bytes accepted from peers, by topic.",
    ["node", "topic"])
PENALTIES = Counter(
    "cybermesh_p2p_penalties_total", "Penalties given to peers, by reason.", ["node", "reason"])
QUARANTINES = Counter(
    "cybermesh_p2p_quarantines_total", "Peers put in quarantine, by triggering reason.",
    ["node", "reason"])
PEER_SCORE = Gauge(
    "cybermesh_p2p_peer_score", "Current score of a peer (0 neutral, negative is bad).",
    ["node", "peer"])
PEERS_CONNECTED = Gauge(
    "cybermesh_p2p_connected_peers", "Peers with an authenticated link.", ["node"])
