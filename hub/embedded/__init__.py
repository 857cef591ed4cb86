"""The embedded servers of one-machine mode: object store (rclone, moto) and broker (Tansu), as child processes."""
