"""Several servers behind one address: the shared session directory and commands between servers."""
