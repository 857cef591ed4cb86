"""lienthong adapters."""
