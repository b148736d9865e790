"""What the user sees: the console entry, options, completion, the live view, summary, report, explain."""

#: The environment variable that asks ``ppipe`` for completions (set by the completion scripts).
COMPLETE_VAR = "_PPIPE_COMPLETE"

#: SIGINTs that reached the command line before its run's own handler was in place. Each raised
#: KeyboardInterrupt, but one raised inside a finalizer or an import's weakref callback is swallowed
#: by Python ("Exception ignored in ..."): the command line checks here too, so that no Ctrl-C is lost.
PENDING_INTERRUPTS: list[int] = []
