"""lienthong hub: the stream processors, settings and the ``lienthong`` command line."""
