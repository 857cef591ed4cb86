"""Sub-commands of the ``lienthong`` command line, one module each."""
