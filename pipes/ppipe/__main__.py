"""``python -m ppipe``: the same as the ``ppipe`` command."""

from ppipe.cli.entry import entry

entry()
