"""A2A protocol layer of the agents gateway: JSON-RPC envelopes and errors (protocol.py), v0.3 ⇄ v1.0 bridging
(bridge.py), the gateway's own agent cards and their signatures (card.py), and calls to A2A upstreams
(upstream.py)."""
