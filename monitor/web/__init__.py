"""The read-only dashboard and the one-file HTML report (``monitor report --html``)."""
