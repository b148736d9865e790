"""N copies of a pipeline side by side: input dealt, output merged, the supervisor and its channel."""
