"""Several servers behind one address: the shared session directory, the typed commands
between servers, and the one place that knows where a session runs (locator)."""
