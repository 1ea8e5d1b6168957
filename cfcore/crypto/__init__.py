"""Cryptography: envelope format, key ring, secret files."""
