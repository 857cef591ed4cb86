"""lienthong signer."""
