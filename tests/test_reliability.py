"""Reliability of what netc writes and runs (docs/robustness.md):

- determinism: the same spec and seed give byte-identical models and data files, whatever the
  process's hash seed, working directory, output path, time zone or locale;
- crash safety: `netc compile` killed at random points while writing a 300 MB model leaves
  the destination absent, or the old file, or the complete new one; the temporary files of
  killed writers are removed by the next netc that writes there (by their locks: never a
  living writer's, wherever it runs); a full disk, a read-only folder, Ctrl-C, SIGTERM or
  SIGHUP give one error and no partial file;
- ONNX Runtime failing a model netc built is reported at the layer's position in the spec,
  as a netc bug.

NETC_KILL_TRIALS sets the number of kill trials (default 20).
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import onnx
import pytest

from netc import files as emit
from netc.cli import main

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "specs" / "lenet5.yaml"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


def netc(*args, cwd=None, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "netc", *map(str, args)], cwd=cwd,
                          env={**ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=300, **kw)


def temps(folder: Path, pid: int | None = None) -> list[str]:
    """netc's temporary and lock files in `folder`; with `pid`, the temporary files that
    process has open (its names carry no PID: found through /proc/PID/fd)."""
    names = sorted(p.name for p in folder.iterdir()
                   if p.name.endswith((emit.TMP_SUFFIX, emit.LOCK_SUFFIX)))
    if pid is None:
        return names
    fds = Path(f"/proc/{pid}/fd")
    held = set()
    try:
        for fd in fds.iterdir():
            try:
                held.add(os.path.basename(os.readlink(fd)))
            except OSError:  # closed meanwhile
                pass
    except OSError:  # the process is gone
        return []
    return [n for n in names if n in held and n.endswith(emit.TMP_SUFFIX)]


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(),
                                reason="finds a writer's temporary file through /proc/PID/fd")


# --- determinism ---------------------------------------------------------------------------------

DETERMINISM_SPEC = """\
netc: 1
name: det
inputs:
  image: [N, 3, 32, 32]
layers:
  - conv: {filters: 32, kernel: 3, pad: 1}
  - batchnorm
  - relu
  - conv: {filters: 64, kernel: 4, stride: 2, pad: 1, bias: false}
  - batchnorm
  - relu
  - globalavgpool
  - flatten
  - dense: 10
"""


@pytest.mark.parametrize("options", [["--external-data"],
                                     ["--external-data", "--dtype", "float16", "--fold-bn"]],
                         ids=["float32", "float16-fold-bn"])
def test_two_processes_write_identical_models_and_data(tmp_path, options):
    """Two processes that differ in PYTHONHASHSEED, working directory, relative or absolute
    spec and output paths, TZ and locale write the same files, byte for byte: the model and
    its external data file (named after the model's file name and the data's hash)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(DETERMINISM_SPEC, encoding="utf-8")
    for side in "ab":
        (tmp_path / side / "out").mkdir(parents=True)
    runs = [
        dict(args=(spec, "-o", tmp_path / "a" / "out" / "m.onnx"), cwd=tmp_path / "a",
             env={"PYTHONHASHSEED": "1", "TZ": "UTC", "LC_ALL": "C", "LANG": "C"}),
        dict(args=("../spec.yaml", "-o", "out/m.onnx"), cwd=tmp_path / "b",
             env={"PYTHONHASHSEED": "2", "TZ": "Asia/Tokyo", "LC_ALL": "C.UTF-8",
                  "LANG": "C.UTF-8"}),
    ]
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda r: netc("compile", *r["args"], "--seed", 7, *options,
                                             cwd=r["cwd"], env=r["env"]), runs))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
    a, b = (sorted((tmp_path / side / "out").iterdir()) for side in "ab")
    assert [p.name for p in a] == [p.name for p in b]
    assert len(a) == 2 and a[1].name.startswith("m.onnx.") and a[1].name.endswith(".data")
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes(), f"{x.name} differs"
    # and nothing of the machine or the moment is in the model
    model = a[0].read_bytes()
    for leak in (str(tmp_path).encode(), b"Tokyo", b"UTC"):
        assert leak not in model


# --- crash safety: SIGKILL at random points -----------------------------------------------------

# 8192 x 9216 float32 weights: a 302 MB model (constant values: the time goes to writing)
BIG = """\
netc: 1
name: big
inputs:
  x: [N, 9216]
layers:
  - dense: {units: 8192, init: constant(0.001)}
    name: fc
"""
TRIALS = int(os.environ.get("NETC_KILL_TRIALS", "20"))


def _sha(path: Path) -> str | None:
    if not path.exists():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _start(spec: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "netc", "compile", str(spec), "-o", str(out)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_temp(folder: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Poll until the writer's temporary file appears."""
    start = time.monotonic()
    while not temps(folder, proc.pid):
        assert proc.poll() is None, "netc finished before its temporary file was seen"
        assert time.monotonic() - start < timeout
        time.sleep(0.002)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """The big spec, and its compiled model's size and hash."""
    folder = tmp_path_factory.mktemp("big")
    spec = folder / "big.yaml"
    spec.write_text(BIG, encoding="utf-8")
    out = folder / "reference.onnx"
    proc = _start(spec, out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    proc.stderr.close()
    model = onnx.load(str(out))  # complete and valid
    onnx.checker.check_model(model)
    assert list(model.graph.initializer[0].dims) == [8192, 9216]
    del model
    size, digest = out.stat().st_size, _sha(out)
    out.unlink()
    return spec, size, digest


def _kill_at(proc, folder: Path, fraction: float, size: int) -> bool:
    """SIGKILL `proc` once its temporary file holds `fraction` of the model's `size` bytes
    (a fraction of 1 is while it flushes, above 1 after the rename); whether it was still
    writing then."""
    _wait_for_temp(folder, proc)
    while True:
        names = temps(folder, proc.pid)
        if not names:  # renamed: the new file is in place
            break
        try:
            written = (folder / names[0]).stat().st_size
        except FileNotFoundError:
            continue
        if written >= min(fraction, 1.0) * size and fraction < 1.05:
            break
        time.sleep(0.001)
    writing = bool(temps(folder, proc.pid)) and proc.poll() is None
    proc.kill()
    return writing


@needs_proc
def test_sigkill_while_writing_leaves_the_old_file_or_the_new_one(big, tmp_path):
    """TRIALS kills at random moments: most at a random point of the write (by the bytes
    written so far, the flush and the rename included), some in the first second, start-up
    included. Afterwards the destination is absent (when nothing was there), the old model,
    or the complete new one; never a part of one. The next netc that writes there removes
    the killed writers' temporary files."""
    spec, size, new_digest = big
    old = tmp_path / "old.onnx"
    assert main(["compile", str(LENET), "-o", str(old)]) == 0
    old_bytes = old.read_bytes()
    old_digest = hashlib.sha256(old_bytes).hexdigest()
    folder = tmp_path / "out"
    folder.mkdir()
    dest = folder / "model.onnx"
    rng = random.Random(20240607)
    outcomes, mid_write = [], 0
    for trial in range(TRIALS):
        had_old = trial % 2 == 1
        if had_old:
            dest.write_bytes(old_bytes)
        elif dest.exists():
            dest.unlink()
        proc = _start(spec, dest)
        if trial % 5 == 0:  # anywhere in the first second, start-up included
            time.sleep(rng.uniform(0, 1.0))
            writing = bool(temps(folder, proc.pid)) and proc.poll() is None
            proc.kill()
        else:
            writing = _kill_at(proc, folder, rng.uniform(0, 1.1), size)
        proc.wait()
        proc.stderr.close()
        mid_write += writing
        state = {None: "absent", old_digest: "old", new_digest: "new"}.get(_sha(dest), "CORRUPT")
        outcomes.append(state)
        allowed = {"old", "new"} if had_old else {"absent", "new"}
        assert state in allowed, f"trial {trial}: destination is {state} ({outcomes})"
    print(f"{TRIALS} kills, {mid_write} while writing: {outcomes}")
    assert mid_write >= TRIALS // 2, f"only {mid_write} kills hit a write: {outcomes}"
    # a last kill mid-write leaves a temporary file; the next compile there removes it
    proc = _start(spec, dest)
    assert _kill_at(proc, folder, 0.5, size)
    proc.wait()
    proc.stderr.close()
    assert temps(folder), "a killed writer leaves its temporary file"
    assert main(["compile", str(LENET), "-o", str(dest)]) == 0
    assert temps(folder) == []
    assert _sha(dest) == old_digest


@needs_proc
@pytest.mark.parametrize("signum, status, says", [
    (signal.SIGINT, 130, "netc: interrupted"),
    (signal.SIGTERM, 143, "netc: terminated by SIGTERM"),
    (signal.SIGHUP, 129, "netc: terminated by SIGHUP"),
], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_writing_exits_cleanly_with_no_partial_file(big, tmp_path, signum,
                                                                  status, says):
    """SIGINT (Ctrl-C), SIGTERM (kill, a container stopping) or SIGHUP (the terminal closed)
    while writing: exit 128 + the signal's number, one line saying so, no traceback, and no
    partial file nor temporary file (the destination absent, or complete when the signal came
    after the rename). SIGINT and SIGTERM at the start of the write and half-way; SIGHUP
    half-way."""
    spec, size, new_digest = big
    folder = tmp_path / "out"
    folder.mkdir()
    dest = folder / "model.onnx"
    for fraction in ((0.0, 0.5) if signum != signal.SIGHUP else (0.5,)):
        proc = _start(spec, dest)
        _wait_for_temp(folder, proc)
        while (names := temps(folder, proc.pid)) and fraction:
            try:
                if (folder / names[0]).stat().st_size >= fraction * size:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.001)
        proc.send_signal(signum)
        err = proc.communicate(timeout=120)[1].decode()
        assert proc.returncode == status, err
        assert says in err and "Traceback" not in err, err
        assert _sha(dest) in (None, new_digest)
        assert temps(folder) == []


# A command whose main thread is in C code (a builtin `sum` over a range checks no signals)
# while SIGTERM and then SIGHUP come; its `finally` runs Python code afterwards, as a cleanup
# does. argv[1]: how many numbers to add (a second or so of work).
BUSY = """
import sys
from netc import cli

def busy(args):
    print("busy", flush=True)
    try:
        sum(range(int(sys.argv[1])))
    finally:
        sum(i for i in range(100_000))  # Python code: where a pending signal is handled
    return 0

cli.COMMANDS["check"] = busy
sys.exit(cli.main(["check", "x.yaml"]))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("first, then", [(signal.SIGTERM, signal.SIGHUP),
                                         (signal.SIGHUP, signal.SIGTERM)],
                         ids=["TERM then HUP", "HUP then TERM"])
def test_two_signals_exit_with_the_first_ones_status(tmp_path, first, then):
    """Two of SIGTERM and SIGHUP, 20 ms apart, while netc runs no Python code: both are
    pending when it does, and Python handles them in the order of their numbers (SIGHUP
    first). netc exits 128 + the number of the one that came FIRST, with one line and no
    traceback (the second used to find its handler set to SIG_IGN while pending: "OSError:
    Signal 15 ignored due to race condition", from inside the cleanup)."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY, str(60_000_000)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "busy\n"
    time.sleep(0.05)
    proc.send_signal(first)
    time.sleep(0.02)
    proc.send_signal(then)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + first, err
    assert err.strip() == f"netc: terminated by {signal.Signals(first).name}", err


# A writer of `target` in another process, made by netc's own code (files.TempFile), that
# also holds, locked, a file named as netc 0.x named its temporary files: with the PID of a
# process that is dead (argv[2]): the PID test would have taken it for a dead writer's, as it
# would a writer's in another PID namespace or on another machine. It prints its temporary
# file's name, waits for a line on standard input, then finishes its write.
LIVE_WRITER = """
import fcntl, os, sys
from netc import files
target, old_style = sys.argv[1], sys.argv[2]
tmp = files.TempFile(target)
fd = os.open(old_style, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
print(os.path.basename(tmp.name), flush=True)
sys.stdin.readline()
tmp.write(b"the live writer's file")
tmp.replace(target)
print("done", flush=True)
"""

# A writer killed while writing `target`: a temporary file and the output's lock file left
KILLED_WRITER = """
import os, sys
from netc import files
files.output_lock(sys.argv[1]).__enter__()
tmp = files.TempFile(sys.argv[1])
tmp.f.write(b"partial")
os._exit(9)
"""


@pytest.mark.skipif(os.name != "posix", reason="advisory locks (fcntl)")
def test_temp_files_of_dead_writers_only_are_removed(tmp_path):
    """netc removes a temporary (or lock) file only when it can take its lock: its writer,
    wherever it ran, is gone. A living writer's file is left alone whatever its name says
    (the PID of a dead process: a PID means nothing in another PID namespace or on another
    machine), and the writer then finishes its write. Files that only look like netc's (a
    pipe, a link, other names) are not touched, and a pipe does not make netc wait."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old_style = f".m.onnx.{dead.pid}-0123abcd-k3x9_z0q.netc-tmp"
    live = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(tmp_path / "m.onnx"),
                             str(tmp_path / old_style)], env=ENV, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        live_temp = live.stdout.readline().strip()
        assert live_temp.endswith(emit.TMP_SUFFIX), live_temp
        killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "k.onnx")],
                                env=ENV)
        assert killed.returncode == 9
        left = set(temps(tmp_path)) - {live_temp, old_style}
        assert len(left) == 2, left  # the killed writer's temporary file and lock file
        (tmp_path / ".m.onnx.data.0a1b2c3d4e5f6789.netc-tmp").write_bytes(b"partial")
        (tmp_path / f".m.onnx.{dead.pid}-0123abcd-a8d7c2b1.netc-tmp").write_bytes(b"partial")
        (tmp_path / "precious").write_bytes(b"mine")
        os.symlink("precious", tmp_path / ".x.onnx.fedcba9876543210.netc-tmp")
        os.mkfifo(tmp_path / ".y.onnx.0123456789abcdef.netc-tmp")
        (tmp_path / "notes.netc-tmp").write_bytes(b"mine")
        before = set(os.listdir(tmp_path))
        assert main(["compile", str(LENET), "-o", str(tmp_path / "other.onnx")]) == 0
        after = set(os.listdir(tmp_path))
        assert after - before == {"other.onnx"}
        assert before - after == left | {".m.onnx.data.0a1b2c3d4e5f6789.netc-tmp",
                                         f".m.onnx.{dead.pid}-0123abcd-a8d7c2b1.netc-tmp"}
        assert (tmp_path / "precious").read_bytes() == b"mine"
        # the living writer was left its file: it finishes its write
        live.stdin.write("go\n")
        live.stdin.flush()
        assert live.stdout.readline().strip() == "done"
        assert live.wait(timeout=60) == 0
        assert (tmp_path / "m.onnx").read_bytes() == b"the live writer's file"
        assert live_temp not in os.listdir(tmp_path)
    finally:
        live.kill()
        live.wait()
        live.stdin.close()
        live.stdout.close()


def _unshare() -> list[str] | None:
    """A command prefix that runs a program in a new PID namespace (`unshare`, as root or
    with unprivileged user namespaces), or None where that is not possible."""
    import shutil

    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--pid", "--fork"],
                   ["unshare", "--user", "--map-root-user", "--pid", "--fork"]):
        try:
            done = subprocess.run(prefix + [sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip() == "1":
            return prefix
    return None


@pytest.mark.skipif(os.name != "posix", reason="advisory locks (fcntl)")
def test_a_writer_in_another_pid_namespace_keeps_its_file(tmp_path):
    """The fault as reported: a writer in another PID namespace (a container) whose PID means
    nothing here. A netc writing into the same folder leaves its temporary file alone (it
    cannot take the lock), and the writer finishes its write."""
    prefix = _unshare()
    if prefix is None:
        pytest.skip("no PID namespace can be made here (unshare)")
    live = subprocess.Popen(prefix + [sys.executable, "-c", LIVE_WRITER,
                                      str(tmp_path / "m.onnx"), str(tmp_path / ".other-file")],
                            env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        live_temp = live.stdout.readline().strip()
        assert live_temp.endswith(emit.TMP_SUFFIX), live_temp
        assert main(["compile", str(LENET), "-o", str(tmp_path / "other.onnx")]) == 0
        assert live_temp in os.listdir(tmp_path)
        live.stdin.write("go\n")
        live.stdin.flush()
        assert live.stdout.readline().strip() == "done"
        assert live.wait(timeout=60) == 0
        assert (tmp_path / "m.onnx").read_bytes() == b"the live writer's file"
    finally:
        live.kill()
        live.wait()
        live.stdin.close()
        live.stdout.close()


CLEANER = "import sys; from netc import files; print(files.remove_stale_temps(sys.argv[1]))"


@pytest.mark.skipif(os.name != "posix", reason="advisory locks (fcntl)")
def test_a_cleaner_between_a_temp_file_and_its_lock_costs_a_retry_not_the_write(
        tmp_path, monkeypatch):
    """A writer creates its temporary file, then locks it. Another process's cleaner that
    comes in between finds it unlocked and removes it: the writer sees, once it holds the
    lock, that its file is no longer at its name, and starts again with a new one."""
    real = emit._try_lock
    cleaned = []

    def lock(fd, wait):
        if wait and not cleaned:  # the first temporary file's lock: another netc cleans first
            done = subprocess.run([sys.executable, "-c", CLEANER, str(tmp_path)], env=ENV,
                                  capture_output=True, text=True, check=True)
            cleaned.append(done.stdout.strip())
        return real(fd, wait)

    monkeypatch.setattr(emit, "_try_lock", lock)
    assert main(["compile", str(LENET), "-o", str(tmp_path / "m.onnx")]) == 0
    assert len(cleaned) == 1 and cleaned[0].endswith(emit.TMP_SUFFIX + "']"), cleaned
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)


# --- injected write errors ----------------------------------------------------------------------


class _FullDisk:
    """A file whose writes fail with ENOSPC once `budget` bytes are written."""

    def __init__(self, f, budget: int) -> None:
        self.f, self.budget = f, budget

    def write(self, chunk) -> int:
        n = memoryview(chunk).nbytes
        if n > self.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= n
        return self.f.write(chunk)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _fill_disk(monkeypatch, fail_on: int, budget: int = 1000) -> None:
    """Files written by netc: the `fail_on`-th (1-based) runs out of space after `budget`
    bytes."""
    real = os.fdopen
    opened = []

    def fdopen(fd, mode="r", *args, **kw):
        f = real(fd, mode, *args, **kw)
        if "w" not in mode:  # a file netc reads (the spec ...)
            return f
        opened.append(fd)
        return _FullDisk(f, budget) if len(opened) == fail_on else f

    monkeypatch.setattr(emit.os, "fdopen", fdopen)


def _one_write_error(capsys, status: int, says: str) -> str:
    err = capsys.readouterr().err
    assert status == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.count("error[") == 1 and "error[E603]" in err and says in err, err
    return err


@pytest.mark.parametrize("old", [False, True], ids=["no old file", "old file kept"])
def test_disk_full_while_writing_a_model(tmp_path, capsys, monkeypatch, old):
    out = tmp_path / "m.onnx"
    if old:
        out.write_bytes(b"the old model")
    _fill_disk(monkeypatch, fail_on=1)
    status = main(["compile", str(LENET), "-o", str(out)])
    _one_write_error(capsys, status, f"cannot write '{out}': No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["m.onnx"] if old else [])
    if old:
        assert out.read_bytes() == b"the old model"


@pytest.mark.parametrize("fail_on", [1, 2], ids=["in the data file", "in the model"])
def test_disk_full_with_external_data_keeps_the_old_pair(tmp_path, capsys, monkeypatch,
                                                         fail_on):
    """With external data, netc writes the data file, then the model. Running out of space in
    either leaves the old model and its data file as they were, and no new data file."""
    out = tmp_path / "m.onnx"
    assert main(["compile", str(LENET), "-o", str(out), "--external-data", "--seed", "1"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    _fill_disk(monkeypatch, fail_on=fail_on)
    status = main(["compile", str(LENET), "-o", str(out), "--external-data", "--seed", "2"])
    _one_write_error(capsys, status, "No space left on device")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_fsync_failure_is_a_write_error(tmp_path, capsys, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(emit.os, "fsync", fsync)
    out = tmp_path / "m.onnx"
    status = main(["compile", str(LENET), "-o", str(out)])
    _one_write_error(capsys, status, "Input/output error")
    assert list(tmp_path.iterdir()) == []


def _sync_every(monkeypatch, nbytes: int, sync) -> None:
    """Large writes sync in a second thread every FLUSH_EVERY bytes: make that often."""
    monkeypatch.setattr(emit._Flusher, "FLUSH_EVERY", nbytes)
    monkeypatch.setattr(emit.os, "fdatasync", sync, raising=False)


def test_syncing_while_writing_changes_no_byte(tmp_path, monkeypatch):
    assert main(["compile", str(LENET), "-o", str(tmp_path / "plain.onnx")]) == 0
    synced = []
    real = getattr(os, "fdatasync", os.fsync)
    _sync_every(monkeypatch, 4096, lambda fd: (synced.append(fd), real(fd)))
    assert main(["compile", str(LENET), "-o", str(tmp_path / "synced.onnx")]) == 0
    assert synced  # 248 KB in 4 KiB steps: the thread ran (wake-ups coalesce: maybe once)
    assert (tmp_path / "synced.onnx").read_bytes() == (tmp_path / "plain.onnx").read_bytes()


def test_a_failed_sync_while_writing_is_a_write_error(tmp_path, capsys, monkeypatch):
    """The final fsync may not report a write error that a sync in the thread already saw:
    netc raises the thread's error itself."""
    def sync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    _sync_every(monkeypatch, 4096, sync)
    out = tmp_path / "m.onnx"
    status = main(["compile", str(LENET), "-o", str(out)])
    _one_write_error(capsys, status, "Input/output error")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_are_ordinary_files(tmp_path, umask):
    """A model gets mode 0666 less the umask, like any file a program writes (not the 0600 of
    a private temporary file)."""
    before = os.umask(umask)
    try:
        assert main(["compile", str(LENET), "-o", str(tmp_path / "m.onnx")]) == 0
    finally:
        os.umask(before)
    assert (tmp_path / "m.onnx").stat().st_mode & 0o777 == 0o666 & ~umask


def test_read_only_folder(tmp_path, capsys, monkeypatch):
    """Permission denied: a read-only folder (as root, which may write anywhere, the
    refusal is simulated where the temporary file is created)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        real = os.open

        def refuse_temps(path, *args, **kw):
            if str(path).endswith(emit.TMP_SUFFIX):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real(path, *args, **kw)

        monkeypatch.setattr(emit.os, "open", refuse_temps)
    else:
        folder.chmod(0o555)
    try:
        status = main(["compile", str(LENET), "-o", str(folder / "m.onnx")])
        _one_write_error(capsys, status, "Permission denied")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_output_path_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "m.onnx").mkdir()
    status = main(["compile", str(LENET), "-o", str(tmp_path / "m.onnx")])
    _one_write_error(capsys, status, f"cannot write '{tmp_path / 'm.onnx'}'")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert list((tmp_path / "m.onnx").iterdir()) == []


# --- ONNX Runtime's failures mapped back to the spec ---------------------------------------------

# where lenet5's layers are written (the type's column)
CONV1, CONV2, DENSE1 = "12:5", "15:5", "19:5"


def _break(monkeypatch, cls, layer: str, make_node) -> None:
    """Make `cls.lower` emit a wrong node for one layer (a simulated netc bug)."""
    real = cls.lower

    def lower(self, b, xs, w, out):
        if out.name == layer:
            make_node(self, b, xs, w, out)
        else:
            real(self, b, xs, w, out)

    monkeypatch.setattr(cls, "lower", lower)


def _bug_report(capsys, status: int, where: str, layer: str, kind: str, doing: str) -> str:
    err = capsys.readouterr().err
    assert status == 70, err
    assert "Traceback" not in err, err
    head = (f"{LENET}:{where}: error[E604]: ONNX Runtime {doing} the model netc built, "
            f"at layer '{layer}' ({kind})")
    assert head in err, err
    assert "this is a bug in netc" in err and "ONNX Runtime said:" in err, err
    return err


def test_ort_rejecting_a_node_names_the_layer(capsys, monkeypatch):
    from netc.layers.conv import Conv

    _break(monkeypatch, Conv, "conv1", lambda self, b, xs, w, out: b.node(
        "Conv", [xs[0].name, w["weight"]], out.name, kernel_shape=[5, 5], bogus=1))
    status = main(["run", str(LENET)])
    err = _bug_report(capsys, status, CONV1, "conv1", "conv", "could not load")
    assert "Unrecognized attribute: bogus" in err


def test_ort_failing_at_run_time_names_the_layer_not_the_fused_node(capsys, monkeypatch):
    """A conv whose kernel_shape contradicts its weight fails only when it runs; ONNX
    Runtime's optimiser has by then fused it and renamed it (`relu2_nchwc`): netc runs the
    model again unoptimised to learn the node's own name."""
    from netc.layers.conv import Conv

    _break(monkeypatch, Conv, "conv2", lambda self, b, xs, w, out: b.node(
        "Conv", [xs[0].name, w["weight"]], out.name, kernel_shape=[7, 7]))
    status = main(["run", str(LENET)])
    err = _bug_report(capsys, status, CONV2, "conv2", "conv", "failed while running")
    assert "Name:'conv2'" in err


def test_bench_names_the_layer_too(capsys, monkeypatch):
    from netc.layers.dense import Dense

    _break(monkeypatch, Dense, "dense1", lambda self, b, xs, w, out: b.node(
        "Gemm", [xs[0].name, w["weight"]], out.name, transB=0))
    status = main(["bench", str(LENET), "--iters", "1", "--warmup", "0"])
    _bug_report(capsys, status, DENSE1, "dense1", "dense", "could not load")


def _foreign_model(path: Path, node) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [node], "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [1], [7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("node, doing", [
    (("Relu", ["x"], ["y"], "my_relu", {"bogus": 1}), "could not load"),
    (("Reshape", ["x", "shape"], ["y"], "my_reshape", {}), "failed while running"),
], ids=["rejected", "fails when run"])
def test_a_foreign_model_failing_is_a_user_error_naming_the_node(tmp_path, capsys, node, doing):
    """An .onnx model netc didn't build: ONNX Runtime's failure is the model's problem (exit
    1), named by its node, not a traceback."""
    from onnx import helper

    op, inputs, outputs, name, attrs = node
    path = tmp_path / "foreign.onnx"
    _foreign_model(path, helper.make_node(op, inputs, outputs, name=name, **attrs))
    status = main(["run", str(path)])
    err = capsys.readouterr().err
    assert status == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert f"error[E604]: ONNX Runtime {doing} '{path}' (node '{name}')" in err, err


def test_a_model_that_runs_is_unaffected(capsys):
    assert main(["run", str(LENET)]) == 0
    out = capsys.readouterr().out
    assert "logits: 1×10 float32" in out
