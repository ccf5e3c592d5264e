"""CodeX: run untrusted Python in hardened containers and stream it, live and interactive."""

__version__ = "0.1.0"
