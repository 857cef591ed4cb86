"""Real servers as pytest fixtures: OpenSSL OCSP responder, OpenSSL TSA, SoftHSM2 token (being written)."""
