"""Crash-safe file writing: every file netc writes goes through `write_atomic`.

A temporary file beside the target, flushed to disk (a second thread syncs a large file while
it is still being written), then renamed over the target: a crash leaves the old file or the
new one, never half of one. Temporary files that a killed writer left behind are removed by the
next netc that writes into the same folder. docs/robustness.md describes the guarantees.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re

from .errors import fail

# Temporary files are named `.<target>.<pid>-<host>-<random>.netc-tmp`, beside the target.
# A writer that is killed (SIGKILL, a power cut) cannot remove its own; the next netc that
# writes into the folder removes those whose writer, on this machine, no longer runs. The host
# tag keeps a folder shared between machines (NFS) safe: another machine's PIDs are not ours.
TMP_SUFFIX = ".netc-tmp"
_HOST = hashlib.sha256(platform.node().encode("utf-8", "replace")).hexdigest()[:8]
_TMP_NAME = re.compile(r"\..+\.(\d{1,10})-([0-9a-f]{8})-[a-z0-9_]+" + re.escape(TMP_SUFFIX) + r"\Z")


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (a process of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # no process can have this number
        return False
    except OSError:  # EPERM: it exists, and belongs to someone else
        return True
    return True


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files of netc processes that died while writing into `folder`
    (never a running writer's); returns the names removed."""
    if os.name != "posix":  # os.kill(pid, 0) sends CTRL_C_EVENT on Windows
        return []
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _TMP_NAME.match(name)
        if m is None or m[2] != _HOST or _alive(int(m[1])):
            continue
        if unlink(os.path.join(folder, name)):
            removed.append(name)
    return removed


def unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:  # already gone (another netc cleaned it), or not ours to remove
        return False


def _fsync_folder(folder: str) -> None:
    """Make a rename in `folder` durable (POSIX); a no-op where folders can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Flusher:
    """Starts a large file's disk writes while the file is still being written.

    A 100 MB model took 50 ms to fsync at the end; syncing in a second thread every
    FLUSH_EVERY bytes lets the disk work while netc draws the next weights, and the final
    fsync waits for the tail only. An error in the thread is raised by `close`."""

    FLUSH_EVERY = 16 << 20

    def __init__(self, f) -> None:
        self.f, self.pending, self.error = f, 0, None
        self.thread = None
        self.stop = False
        self.wake = None

    def wrote(self, n: int) -> None:
        self.pending += n
        if self.pending < self.FLUSH_EVERY:
            return
        self.pending = 0
        self.f.flush()  # into the kernel, where the sync can see it
        if self.thread is None:
            import threading

            self.wake = threading.Event()
            self.thread = threading.Thread(target=self._run, name="netc-flush", daemon=True)
            self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
        fd = self.f.fileno()
        while True:
            self.wake.wait()
            self.wake.clear()
            try:  # at `close` too: then it syncs the tail, and the final fsync has no work
                sync(fd)
            except OSError as e:  # the final fsync may not see a write error again
                self.error = e
                return
            if self.stop:
                return

    def close(self) -> None:
        """Stop the thread (before the file is closed); raise any error it met."""
        if self.thread is not None:
            self.stop = True
            self.wake.set()
            self.thread.join()
        if self.error is not None:
            raise self.error


_TEMP_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
               | getattr(os, "O_CLOEXEC", 0))


def _temp_name(folder: str, base: str) -> str:
    """A new name for a temporary file of target `base` in `folder`."""
    return os.path.join(folder, f".{base}.{os.getpid()}-{_HOST}-{os.urandom(6).hex()}{TMP_SUFFIX}")


def write_atomic(path: str, data, keep_tmp: bool = False):
    """Write `data` (bytes, or an iterable of bytes-like chunks) to `path` so that a crash
    leaves the old file or the new one, never half: a temporary file in the same folder,
    flushed to disk, then renamed over the target (a symbolic link at `path` is replaced by
    the file, its target left alone). With `keep_tmp`, the flushed temporary file is left for
    the caller to rename, and its name returned. Temporary files that dead netc processes
    left in the folder are removed first. An OSError (a missing or read-only folder, a full
    disk) is E603; on any failure or interruption the temporary file is removed."""
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temps(folder)
    tmp = None
    try:
        # the name first, then the file (not mkstemp, which creates the file and only then
        # returns its name: a Ctrl-C between the two would leave a file nobody can name);
        # mode 0666 less the umask, as for any output
        while tmp is None:
            tmp = _temp_name(folder, os.path.basename(path))
            try:
                fd = os.open(tmp, _TEMP_FLAGS, 0o666)
            except FileExistsError:  # 48 random bits and our PID: in practice, never
                tmp = None
        with os.fdopen(fd, "wb") as f:
            flusher = _Flusher(f)
            try:
                for chunk in ([data] if isinstance(data, (bytes, bytearray)) else data):
                    f.write(chunk)
                    flusher.wrote(memoryview(chunk).nbytes)
                f.flush()
            finally:
                flusher.close()
            os.fsync(f.fileno())
        if keep_tmp:
            done, tmp = tmp, None
            return done
        os.replace(tmp, path)
        tmp = None
        _fsync_folder(folder)
    except OSError as e:
        raise fail("E603", f"cannot write '{path}': {e.strerror or e}", None) from None
    finally:
        if tmp is not None:
            unlink(tmp)
