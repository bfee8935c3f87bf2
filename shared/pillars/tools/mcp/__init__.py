"""The MCP protocol layer of the tools pillar: JSON-RPC framing, revision negotiation, session tokens, the upstream
client and the bridging between revisions. Nothing here knows about keys, quotas or the registry."""
