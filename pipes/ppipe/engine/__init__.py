"""Bytes move: processes started and reaped, pipes and their descriptors, sinks, pumps, one execution."""
