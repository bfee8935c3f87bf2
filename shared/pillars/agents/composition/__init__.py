"""Composite agents: sequential and router compositions of published agents, one budget per task (see
docs/architecture.md, "Composite agents"). Kept import-light: domain.py imports `contracts`."""
