"""Running a sharded run's shards on a cluster's own scheduler (``--on slurm``) instead of on this machine."""
