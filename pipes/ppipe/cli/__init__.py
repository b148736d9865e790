"""What the user sees: the console entry, options, completion, the live view, summary, report, explain."""

#: The environment variable that asks ``ppipe`` for completions (set by the completion scripts).
COMPLETE_VAR = "_PPIPE_COMPLETE"
