"""ft-hallu's keyboard-only terminal UI (Textual): one screen per workflow step.

Start it with ``ft-hallu tui``; :class:`tui.app.FtHalluApp` takes the store path so tests and
other front ends can open it on any database.
"""
