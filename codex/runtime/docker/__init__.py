"""The Docker runtime: hardened single-use containers, the pool, the engine gate."""
