"""Sessions: one execution each, from request to verdict, and the registry of them."""
