"""``python -m ppipe``: the same as the ``ppipe`` command."""

from .entry import entry

entry()
