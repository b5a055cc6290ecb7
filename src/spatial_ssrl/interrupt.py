"""Leaving after Ctrl-C within the promised time.

With torch loaded, the interpreter's own teardown (finalising modules and the objects they
hold) takes over a second after the command has finished its work. When ``ssrl`` runs as
a program, :func:`exit_interrupted` runs the exit handlers, flushes the output and leaves
at once with status 130; every file a command keeps is complete by then (atomic renames,
synced markers). Inside another program (a test runner calling the CLI in-process) it is a
plain ``sys.exit(130)``.
"""

from __future__ import annotations

import os
import sys

AS_PROGRAM = False  # set by the program's entry point (``ssrl`` / ``python -m spatial_ssrl.cli``)


def exit_interrupted(code: int = 130):
    if not AS_PROGRAM:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
