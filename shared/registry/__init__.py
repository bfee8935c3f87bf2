"""Registry services: the control plane's logic (validation across documents, cascades, cache invalidation).
The HTTP adapters in functions/ only translate requests and responses."""
