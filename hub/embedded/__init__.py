"""The embedded servers of one-machine mode: object store (SeaweedFS ``weed mini``) and broker, as child processes."""
