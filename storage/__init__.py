"""lienthong storage."""
