"""The embedded servers of one-machine mode: object store (SeaweedFS) and broker (Apache Kafka), as child processes."""
