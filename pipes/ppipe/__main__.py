"""``python -m ppipe``: the same as the ``ppipe`` command."""

from .cli import entry

entry()
