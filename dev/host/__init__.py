"""A small local host for the Functions app: runs the very same HTTP, timer and queue function definitions
without Azure Functions Core Tools (for people without Core Tools, for the tests and for CI)."""
