"""Adapters: each one translates between one chat platform and the core."""
