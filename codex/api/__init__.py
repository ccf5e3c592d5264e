"""Thin transports: HTTP (REST, OpenAPI), Socket.IO and the terminal WebSockets.

Each translates messages to calls on a session and nothing more."""
