"""Transports translate messages to calls on a Session, and a Session's log to messages."""
