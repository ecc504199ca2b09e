"""Say what is happening while a function compiles.

Compiling a graph takes milliseconds in dilnet's default mode (`dilnet.modes`) but can take tens
of seconds in others (the C VM with a cold compile cache, Numba's first call). `compiling`
wraps each compile: once it has lasted `AFTER` seconds,

* on a terminal (standard error is a TTY), a status line counts the seconds,
  ``compiling the training function... 4.2 s``, and is replaced by
  ``compiled the training function in 4.4 s`` at the end, whatever the call's ``verbose``
  (``dilnet.status.enabled = False`` turns it off);
* with ``verbose=2`` (one line per epoch, as in Keras) that last line is printed once instead,
  also when the output is not a terminal;
* the ``dilnet`` logger records it at INFO level.

Nothing is written otherwise (a pipe or a log file gets no status line), and nothing at all for
compiles shorter than `AFTER`.
"""

import contextlib
import logging
import sys
import threading
import time

__all__ = ["AFTER", "compiling", "enabled"]

#: whether the live status line is shown on a terminal
enabled = True

#: seconds a compile lasts before anything is said
AFTER = 1.0
#: seconds between updates of the status line
EVERY = 0.2

logger = logging.getLogger("dilnet")


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def compiling(what, verbose=1, stream=None, after=None):
    """Report the compile of `what` (e.g. "the training function") that the block runs.

    Parameters
    ----------
    what : str
    verbose : int
        The call's ``verbose``: 2 prints one line when done, terminal or not (unless the live
        line said it already); 0 and 1 change nothing.
    stream : file, optional
        Where the live line goes (default: standard error; the ``verbose=2`` line goes to
        standard output, with the per-epoch lines).
    after : float, optional
        Seconds before anything is said (default `AFTER`).
    """
    after = AFTER if after is None else after
    stream = sys.stderr if stream is None else stream
    live = enabled and _is_terminal(stream)
    start = time.perf_counter()
    done = threading.Event()
    shown = []

    def update():
        if done.wait(after):
            return
        while not done.is_set():
            seconds = time.perf_counter() - start
            stream.write(f"\rcompiling {what}... {seconds:.1f} s")
            stream.flush()
            shown.append(True)
            done.wait(EVERY)

    thread = threading.Thread(target=update, daemon=True) if live else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        done.set()
        if thread is not None:
            thread.join()
        seconds = time.perf_counter() - start
        if seconds >= after:
            message = f"compiled {what} in {seconds:.1f} s"
            logger.info(message)
            if shown:
                stream.write(f"\r{message}\033[K\n")
                stream.flush()
            elif verbose == 2:
                print(message, flush=True)
