"""What the user sees: the console entry, options, completion, the live view, summary, report, explain."""
