"""Guardrails (RAI policies): one engine for all three pillars. See docs/admin-guide.md#guardrails."""
