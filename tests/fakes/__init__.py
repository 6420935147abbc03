"""Test doubles that speak the real protocols over real sockets (no mocks of our own code)."""
