"""Worker processes that die with their parent: no decoder left running after a kill -9.

On Linux :func:`die_with_parent` asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to
kill the calling process when its parent exits; elsewhere it starts a daemon thread that
exits the process once the parent is gone (its parent id changes). Called by every pool
initialiser. The multiprocessing forkserver (a child of the main process, the parent of the
decode workers) is covered by :func:`preload_in_forkserver`, which the CLI calls: the
forkserver then imports ``nmodal._forkserver_lifeline``, which calls :func:`die_with_parent`
with the id of the process that started it (passed in ``NMODAL_LIFELINE_PARENT``): the
forkserver may still be importing its preload modules when that process is killed, and
then its own parent id already names whatever adopted it. It must exit then, not serve the
request for a worker that the dead process left in its socket (that request holds the
forkserver's "alive" pipe open, so the forkserver would wait for it forever). The resource
tracker exits by itself once all of them are gone.

Example:
    >>> die_with_parent()  # in a worker initialiser
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
#: the environment variable that tells the forkserver which process it must die with
PARENT_ENV = "NMODAL_LIFELINE_PARENT"
# The process that imported this module: a process forked from it (a pool worker forked
# by the forkserver or by ``fork``) knows its parent's id even if that parent is already
# gone when the worker gets to ask.
_IMPORTED_IN = os.getpid()


def _watch(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int | None = None) -> None:
    """Make this process exit when its parent process dies (best effort, never raises).

    ``parent``: the id the parent must have (this process exits at once when it does not,
    i.e. the parent is already gone); by default the process this module was imported in
    (for a process forked from it) or the current parent."""
    if parent is None:
        parent = _IMPORTED_IN if os.getpid() != _IMPORTED_IN else os.getppid()
    done = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            done = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            done = False
    if not done:
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def preload_in_forkserver() -> None:
    """Have the multiprocessing forkserver (started later, if ever) die with this process."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    os.environ[PARENT_ENV] = str(os.getpid())  # inherited by the forkserver when it starts
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", "nmodal._forkserver_lifeline"])
