"""Crash-safe file writing: every file netc writes goes through `write_atomic` (or, for a model
and its data file, `TempFile` under `output_lock`).

A temporary file beside the target, flushed to disk (a second thread syncs a large file while
it is still being written), then renamed over the target: a crash leaves the old file or the
new one, never half of one. docs/robustness.md describes the guarantees.

What netc never replaces (E603): a file this process reads (`note_input`: the spec, weights,
a model and its data files, input arrays, images, a labels file), and anything that is not a
regular file (a device such as /dev/null, a named pipe, a socket, a folder), also when a
symbolic link leads to it. A symbolic link to a regular file is replaced by the output, its
target left alone; `in_place` (`netc check --update-expect`) writes through it instead.

Liveness by advisory locks, not PIDs. A writer holds an exclusive `flock` on its temporary file
from creating it until the rename. A writer killed (SIGKILL, a power cut) cannot remove its
file, but the kernel drops its lock; the next netc that writes into the folder removes the
temporary files whose lock it can take. A PID says nothing across PID namespaces (containers)
or machines sharing a folder; a lock is held by whoever holds it, wherever. On NFS, Linux
turns `flock` into an NFS lock that every client sees (unless mounted `nolock` or
`local_lock=flock|all`: then the locks are local, and another machine may remove a live
writer's file, which that writer reports as E603, never as a wrong file). Where the file system
has no locks at all, nothing is removed.

Writers of one output take `output_lock`: an exclusive lock on `.<name>.netc-lock` beside it,
held while the data file, the model and the removal of stale data files are written, so that
concurrent writers of one model take turns and the last one's pair stands complete. The lock
file is removed by its holder before it lets go (a waiter that then holds a removed file sees
that and tries again), so none is left behind except by a killed writer, and the cleaner
removes those as it does temporary files.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys

from .errors import fail

# (hashlib and threading are imported where they are needed: `netc check` reads specs, and
# notes them as inputs, without either)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; nothing is ever taken for dead
    fcntl = None

TMP_SUFFIX = ".netc-tmp"
LOCK_SUFFIX = ".netc-lock"
NAME_MAX = 255  # bytes of a file name, where the file system does not say (os.pathconf)
# `.<target>.<16 hex>.netc-tmp`; also netc 0.x's `.<target>.<pid>-<host>-<random>.netc-tmp`,
# which are removed by the same test (no writer of that kind holds a lock: one version per
# folder at a time)
_TMP_NAME = re.compile(r"\..+\.(?:[0-9a-f]{16}|\d{1,10}-[0-9a-f]{8}-[a-z0-9_]+)"
                       + re.escape(TMP_SUFFIX) + r"\Z", re.S)
_LOCK_NAME = re.compile(r"\..+" + re.escape(LOCK_SUFFIX) + r"\Z", re.S)
_OPEN_FLAGS = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS
# opening a file netc did not create: never follow a link, never wait on a pipe
_PROBE_FLAGS = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
    | _OPEN_FLAGS

# (st_dev, st_ino) of the temporary and lock files this process holds: its own cleaner never
# opens them (on NFS, where locks are per process, closing any descriptor of a file would drop
# this process's lock on it)
_LIVE: set[tuple[int, int]] = set()


# --- what this process reads -------------------------------------------------------------------

# (st_dev, st_ino) -> (the path as given, what it is): files this process has read. No output
# may replace one of them (`check_target`).
_INPUTS: dict[tuple[int, int], tuple[str, str]] = {}


def note_input(path, what: str = "a file this command reads",
               st: os.stat_result | None = None) -> None:
    """Record that this process reads the file at `path` (`what` it is, for the message:
    "the spec", "an image" ...), so that no output of this process replaces it (E603). Call
    it where a file is opened for reading; a path that cannot be stat'ed is ignored (opening
    it says why). `st`: its stat result, when the caller has one."""
    if st is None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return
    _INPUTS.setdefault((st.st_dev, st.st_ino), (os.fsdecode(path), what))


def note_model(path, model) -> None:
    """`note_input` for an ONNX model file and each external data file it names (those
    inside its folder; `weights.check_onnx_file` refuses the others). `model`: its
    ModelProto, read without the data."""
    note_input(path, "the model")
    folder = os.path.dirname(os.path.abspath(path))
    for location in sorted(_external_locations(model.graph)):
        if location and not os.path.isabs(location) and "\0" not in location:
            note_input(os.path.join(folder, location), "the model's data file")


def _external_locations(graph) -> set[str]:
    found = set()
    tensors = list(graph.initializer)
    tensors += [t for s in graph.sparse_initializer for t in (s.values, s.indices)]
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
            tensors += list(attr.tensors)
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                found |= _external_locations(g)
    for t in tensors:
        if t.data_location == 1:  # onnx.TensorProto.EXTERNAL
            found |= {e.value for e in t.external_data if e.key == "location"}
    return found


def forget_inputs() -> None:
    """Start a new run: forget the inputs noted so far (`main` calls it, as a process may run
    many commands: a file read by an earlier one may be an output now, and an inode number of
    a file since removed may be a new file's)."""
    _INPUTS.clear()


def input_of(st: os.stat_result) -> tuple[str, str] | None:
    """(path, what) of the input this process read that `st` is, or None."""
    return _INPUTS.get((st.st_dev, st.st_ino))


# --- what may be written -----------------------------------------------------------------------

_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISSOCK, "a socket")]


def check_target(path: str, suffix: str | None = None, in_place: bool = False) -> None:
    """E603 unless netc may put a new file at `path`: nothing there, a regular file that
    is none of this process's inputs (`note_input`) nor its standard input, output or error,
    or a symbolic link to one (or a link that leads nowhere). `suffix`: the extension the
    output normally has (".onnx"), for the hint's file name. With `in_place`, `path` is an
    input being edited on purpose (its inputs are not checked) and must be writable (and
    have a write bit: root is held to it too)."""
    try:
        st = os.stat(path)  # through links: the file the path leads to
    except (OSError, ValueError):  # nothing there (or a broken link), or the write will say
        return
    shown = os.fsdecode(path)
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        via = f" (through the link '{shown}' -> '{os.readlink(path)}')" \
            if os.path.islink(path) else ""
        if kind == "a folder":
            hints = [f"name a file in it: {os.path.join(shown, 'NAME')}{suffix or ''}"]
        else:
            hints = ["netc writes its output to a new file and renames it over the path, "
                     "which would replace the " + kind.split(" ", 1)[1] + ": give a regular "
                     "file's path"]
            if os.path.realpath(path) == os.devnull:
                hints.append("to check a spec without writing anything: netc check SPEC; "
                             "`netc graph` and `netc expand` print to standard output when "
                             "-o is left out")
        raise fail("E603", f"cannot write '{shown}': it is {kind}{via}, not a regular file",
                   None, hints=hints)
    for fd, stream in enumerate(("input", "output", "error")):
        try:
            same = os.path.samestat(st, os.fstat(fd))
        except OSError:  # (closed)
            continue
        if same:  # /dev/stdout leading to a file `>` made (root could replace /dev/stdout)
            raise fail("E603", f"cannot write '{shown}': it is this command's standard "
                       f"{stream}", None,
                       hints=["write to a file of its own; `netc graph` and `netc expand` "
                              "print to standard output when -o is left out"])
    if in_place:
        # (a file without a write bit is read-only to netc also for root, who could write it)
        if not os.access(path, os.W_OK) or not st.st_mode & 0o222:
            raise fail("E603", f"cannot write '{shown}': the file is read-only (mode "
                       f"{stat.S_IMODE(st.st_mode):04o})", None,
                       hints=[f"make it writable first (chmod u+w '{shown}'), or leave it as "
                              "it is"])
        return
    found = input_of(st)
    if found is None:
        return
    source, what = found
    same = os.path.abspath(source) == os.path.abspath(shown)
    where = "it is" if same else f"it is the same file as '{source}' (through a link):"
    raise fail("E603", f"cannot write '{shown}': {where} {what} this command reads, and netc "
               "never replaces one of its inputs", None,
               hints=[f"write to another file: {_another_name(shown, suffix)}"])


def _another_name(path: str, suffix: str | None) -> str:
    """A file name beside `path` for the output: its stem with `suffix` (or its own
    extension), that is no input and not `path` itself."""
    stem, ext = os.path.splitext(path)
    suffix = suffix or ext
    for candidate in (stem + suffix, f"{stem}-out{suffix}", f"{stem}-netc{suffix}"):
        if os.path.abspath(candidate) == os.path.abspath(path):
            continue
        try:
            if input_of(os.stat(candidate)) is not None:
                continue
        except (OSError, ValueError):
            pass
        return candidate
    return f"{stem}-new{suffix}"


# --- names that fit the file system ------------------------------------------------------------


def name_max(folder: str) -> int:
    """The longest file name (bytes) the file system of `folder` takes: os.pathconf's
    PC_NAME_MAX, or NAME_MAX where it does not say."""
    try:
        limit = os.pathconf(folder or ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # (Windows has no pathconf)
        return NAME_MAX
    return limit if isinstance(limit, int) and limit > 0 else NAME_MAX


def fit(base: str, room: int, folder: str) -> str:
    """`base`, or, when `base` and `room` more bytes would pass the longest file name of
    `folder`'s file system, its beginning and `~` and 8 hex digits of its SHA-256 (so two
    long names stay apart). For names netc derives from a target: temporary, lock and data
    files. Deterministic for a file system's limit."""
    limit = name_max(folder)
    raw = os.fsencode(base)
    if len(raw) + room <= limit:
        return base
    import hashlib

    tag = "~" + hashlib.sha256(raw).hexdigest()[:8]
    keep = max(limit - room - len(tag), 1)
    cut = base
    while len(os.fsencode(cut)) > keep:  # whole characters (surrogate escapes included)
        cut = cut[:-1]
    return cut + tag


def _temp_name(folder: str, base: str) -> str:
    """A new name for a temporary file of target `base` in `folder`: `.<base>.<16 hex>
    .netc-tmp`, `base` shortened where the whole would not fit the file system's limit."""
    room = 1 + 1 + 16 + len(TMP_SUFFIX)
    return os.path.join(folder, f".{fit(base, room, folder)}.{os.urandom(8).hex()}{TMP_SUFFIX}")


def lock_name(folder: str, base: str) -> str:
    """The lock file of target `base` in `folder`: `.<base>.netc-lock` (shortened to fit)."""
    return os.path.join(folder, f".{fit(base, 1 + len(LOCK_SUFFIX), folder)}{LOCK_SUFFIX}")


# --- locks ------------------------------------------------------------------------------------

_LOCK_UNSUPPORTED = {getattr(errno, n, None) for n in
                     ("ENOLCK", "EOPNOTSUPP", "ENOTSUP", "EINVAL", "ENOSYS")} - {None}


def _try_lock(fd: int, wait: bool) -> bool | None:
    """flock LOCK_EX on `fd`: True when taken, False when another holds it (and not
    `wait`), None where the file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _LOCK_UNSUPPORTED:
            return None
        raise


_HELD = None  # a threading.local: lock file -> how many times this thread holds it
_THREAD_LOCKS: dict = {}  # lock file -> a threading.Lock: the threads of this process


class output_lock:
    """`with output_lock(path):` holds the exclusive lock of output `path` (module doc):
    writers of one output, in any process, on any machine that sees the folder's locks, take
    turns. Reentrant within a thread. Waiting says so on standard error. An OSError taking
    it (a missing or read-only folder) is E603 naming `path`."""

    def __init__(self, path: str) -> None:
        folder, base = os.path.split(os.path.abspath(path))
        self.path, self.folder = path, folder
        self.lock = lock_name(folder, base)
        self.key = os.path.join(os.path.realpath(folder), os.path.basename(self.lock))
        self.fd = self.id = None
        self.outer = False

    def __enter__(self):
        global _HELD
        import threading

        if _HELD is None:
            _HELD = threading.local()
        held = _HELD.__dict__.setdefault("locks", {})
        if held.get(self.key):
            held[self.key] += 1
            return self
        # (setdefault is atomic under the GIL: one Lock per lock file wins)
        mutex = _THREAD_LOCKS.setdefault(self.key, threading.Lock())
        mutex.acquire()
        try:
            if fcntl is not None:
                self._take()
        except BaseException:
            mutex.release()
            raise
        held[self.key] = 1
        self.outer = True
        return self

    def _take(self) -> None:
        said = False
        while True:
            fd = self._open()
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise self._not_ours("not a regular file")
                got = _try_lock(fd, wait=False)
                if got is False:
                    if not said:
                        print(f"netc: waiting for another netc writing '{self.path}' to "
                              "finish", file=sys.stderr, flush=True)
                        said = True
                    got = _try_lock(fd, wait=True)
                if got is None:  # no locks on this file system: nothing to serialise with
                    os.close(fd)
                    unlink(self.lock)
                    return
                try:
                    same = os.path.samestat(st, os.lstat(self.lock))
                except OSError:
                    same = False
                if same:  # (else its holder removed it before letting go: try again)
                    self.fd, self.id = fd, (st.st_dev, st.st_ino)
                    _LIVE.add(self.id)
                    return
            except OSError as e:  # (ESTALE on NFS, EIO ...)
                os.close(fd)
                raise fail("E603", f"cannot write '{self.path}': {e.strerror or e}",
                           None) from None
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _open(self) -> int:
        """The lock file, created if missing; read-only where another user's file can't be
        opened for writing (a lock needs no more on a local disk)."""
        try:
            return os.open(self.lock, _PROBE_FLAGS | os.O_CREAT, 0o666)
        except PermissionError:
            try:
                return os.open(self.lock, (_PROBE_FLAGS & ~os.O_RDWR) | os.O_RDONLY)
            except OSError:
                pass
            error = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self._not_ours("a symbolic link") from None
            error = e
        raise fail("E603", f"cannot write '{self.path}': {error.strerror or error}",
                   None) from None

    def _not_ours(self, what: str):
        return fail("E603", f"cannot write '{self.path}': '{self.lock}', where netc locks it "
                    f"while writing, is {what}, not netc's lock file", None,
                    hints=[f"remove '{self.lock}' (netc makes it again when needed)"])

    def __exit__(self, *exc) -> None:
        held = _HELD.__dict__["locks"]
        held[self.key] -= 1
        if not self.outer:
            return
        del held[self.key]
        try:
            if self.fd is not None:
                unlink(self.lock)  # while holding it: a waiter then sees it is gone
                _LIVE.discard(self.id)
                os.close(self.fd)
                self.fd = None
        finally:
            _THREAD_LOCKS[self.key].release()


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files (and lock files) that netc writers which died left in
    `folder`: those whose lock can be taken, so no living writer holds it, wherever it runs
    (never this process's own). Returns the names removed."""
    if fcntl is None:
        return []
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (_TMP_NAME.match(name) or _LOCK_NAME.match(name)):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in _LIVE:
            continue  # not netc's (a link, a pipe ...), or this process's own
        try:
            fd = os.open(path, _PROBE_FLAGS)
        except OSError:  # gone, or not ours to open
            continue
        try:
            if not os.path.samestat(os.fstat(fd), st) or not _try_lock(fd, wait=False):
                continue  # replaced meanwhile; a living writer's; or no locks here
            try:
                if os.path.samestat(os.lstat(path), st) and unlink(path):
                    removed.append(name)
            except OSError:
                pass
        except OSError:
            continue
        finally:
            os.close(fd)
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


class TempFile:
    """A new temporary file beside `target` (same folder, `_temp_name`), locked by this
    process until `replace` renames it or `discard` removes it; `shown` names the output in
    errors. `like`: the stat result of a file whose mode (and owner, where this process may
    set it) the new file takes, for in-place edits. An OSError is E603 naming `shown`."""

    def __init__(self, target: str, shown: str | None = None,
                 like: os.stat_result | None = None) -> None:
        self.shown = os.fsdecode(shown if shown is not None else target)
        self.folder, base = os.path.split(os.path.abspath(target))
        self.name = self.f = self.id = None
        try:
            # the name first, then the file (not mkstemp, which creates the file and only
            # then returns its name); mode 0666 less the umask, as for any output. Were a
            # signal to leave it unnamed, it is unlocked: the next writer's cleaner takes it
            while True:
                name = _temp_name(self.folder, base)
                try:
                    fd = os.open(name, _TEMP_FLAGS, 0o666)
                except FileExistsError:  # 64 random bits: in practice, never
                    continue
                self.name = name
                self.f = os.fdopen(fd, "wb")
                st = os.fstat(fd)
                self.id = (st.st_dev, st.st_ino)
                _LIVE.add(self.id)
                if fcntl is None or not _try_lock(fd, wait=True):
                    break  # (no locks on this file system: as on Windows)
                try:  # a cleaner may have taken it between the open and the lock
                    if os.path.samestat(st, os.lstat(name)):
                        break
                except OSError:
                    pass
                self.name = None  # removed by that cleaner: not ours to remove again
                self._forget()
            if like is not None:
                self._take_mode(like)
        except OSError as e:
            self.discard()
            raise self.error(e) from None
        except BaseException:
            self.discard()
            raise

    def _take_mode(self, like: os.stat_result) -> None:
        fd = self.f.fileno()
        if hasattr(os, "fchown") and (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
            try:  # (before the mode: a change of owner clears set-id bits)
                os.fchown(fd, like.st_uid, like.st_gid)
            except OSError:
                try:  # not root: the group, if this user is in it
                    os.fchown(fd, -1, like.st_gid)
                except OSError:
                    pass
        if hasattr(os, "fchmod"):
            os.fchmod(fd, stat.S_IMODE(like.st_mode))
        else:
            os.chmod(self.name, stat.S_IMODE(like.st_mode))

    def error(self, e: OSError):
        return fail("E603", f"cannot write '{self.shown}': {e.strerror or e}", None)

    def write(self, data) -> None:
        """Write `data` (bytes, or an iterable of bytes-like chunks), flushed to disk."""
        f = self.f
        try:
            flusher = _Flusher(f)
            try:
                for chunk in ([data] if isinstance(data, (bytes, bytearray)) else data):
                    f.write(chunk)
                    flusher.wrote(memoryview(chunk).nbytes)
                f.flush()
            finally:
                flusher.close()
            os.fsync(f.fileno())
        except OSError as e:
            raise self.error(e) from None

    def replace(self, final: str) -> None:
        """Rename the file over `final` (in the same folder) and make that durable; the
        lock goes with the file's last descriptor, after the rename."""
        try:
            if fcntl is None:  # (Windows renames no open file)
                self.f.close()
            os.replace(self.name, final)
            self.name = None
            _fsync_folder(self.folder)
        except OSError as e:
            if e.errno == errno.ENOENT and self.name and not os.path.lexists(self.name):
                raise fail("E603", f"cannot write '{self.shown}': another process removed "
                           f"its temporary file '{self.name}' while netc was writing it", None,
                           hints=["the folder's file system does not share netc's locks "
                                  "between machines (NFS mounted `nolock`?): write it on "
                                  "one machine at a time"]) from None
            raise self.error(e) from None
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the file, if it was not renamed, and close it (idempotent)."""
        if self.name is not None:
            unlink(self.name)
            self.name = None
        self._forget()

    def _forget(self) -> None:
        if self.f is not None:
            try:
                self.f.close()
            except OSError:
                pass
            self.f = None
        if self.id is not None:
            _LIVE.discard(self.id)
            self.id = None


def write_atomic(path: str, data, *, in_place: bool = False, suffix: str | None = None) -> None:
    """Write `data` (bytes, or an iterable of bytes-like chunks) to `path` so that a crash
    leaves the old file or the new one, never half: a temporary file in the same folder,
    flushed to disk, then renamed over the target, under the output's lock.

    E603, before anything is written, where `check_target` refuses `path`: one of this
    process's inputs, or not a regular file (`suffix`: the output's usual extension, for the
    hint). A symbolic link at `path` is replaced by the file, its target left alone; with
    `in_place` (an edit of an input on purpose), the file the link leads to is written
    instead, and keeps its mode and, where this process may set it, its owner. Temporary files
    that dead netc processes left in the folder are removed first. An OSError (a missing or
    read-only folder, a full disk) is E603; on any failure or interruption the temporary file
    is removed."""
    shown = os.fsdecode(path)
    like = None
    if in_place:
        path = os.path.realpath(path)
    check_target(path, suffix, in_place)
    if in_place:
        try:
            like = os.stat(path)
        except OSError:
            like = None
    with output_lock(path):
        check_target(path, suffix, in_place)  # (again: it may have changed while waiting)
        remove_stale_temps(os.path.dirname(os.path.abspath(path)))
        tmp = TempFile(path, shown, like)
        try:
            tmp.write(data)
            tmp.replace(path)
        finally:
            tmp.discard()
