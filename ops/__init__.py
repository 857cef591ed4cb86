"""lienthong ops."""
