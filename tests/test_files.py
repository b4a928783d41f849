"""What netc writes (docs/robustness.md, "Writing"): issue 15's invariants (c) and (d), and the
kinds of fault around them.

(c) Nothing netc writes replaces one of its own inputs or a file that is not a regular file:
    every command that writes, with its output pointed at every input it reads (the same path,
    a symbolic link to it, a hard link to it) and at /dev/null and a named pipe, exits 1 with
    E603, leaves every input byte for byte as it was, and leaves no temporary or lock file.
(d) N concurrent writers of one output leave one complete model, with its data file, that is
    byte for byte what one of them writes alone and loads and runs in ONNX Runtime; none exits
    70; no temporary, lock or stale data file is left.

Also: output names as long as the file system takes (the temporary, lock and data files'
names derived from them are shortened, never refused); `netc check --update-expect` through a
symbolic link and keeping the file's mode; the data files of earlier compiles removed, never
an input; a lock file's name taken by something that is not one.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from netc import files
from netc.cli import main
from netc.weights import initial_weights, save_weights

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
posix = pytest.mark.skipif(os.name != "posix", reason="POSIX links, pipes and advisory locks")

H, W = 12, 16
# a 16-filter conv (1,728 bytes of weights: external with --external-data), then class scores
# per pixel (a segmentation model: --masks), the classes named by a labels file
SPEC = f"""\
netc: 1
name: s
inputs:
  image: [N, 3, {H}, {W}]
preprocess: {{resize: [{H}, {W}]}}
labels: labels.txt
layers:
  - conv: {{filters: 16, kernel: 3, pad: 1}}
    name: features
  - conv: {{filters: 4, kernel: 1}}
    name: scores
"""


def netc_files(folder: Path) -> list[str]:
    """netc's temporary and lock files in `folder` (and its subfolders)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith((files.TMP_SUFFIX, files.LOCK_SUFFIX)))


def _status(capsys, argv: list) -> tuple[int, str]:
    status = main([str(a) for a in argv])
    return status, capsys.readouterr().err


# --- (c) no output replaces an input, or something that is not a regular file ------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder holding every kind of file a command reads: a spec (with a labels file), its
    weights, an .onnx model with its external data file, an input array, an image."""
    folder = tmp_path_factory.mktemp("inputs")
    spec = folder / "s.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    (folder / "labels.txt").write_text("red\ngreen\nblue\ndark\n", encoding="utf-8")
    from netc.pipeline import check_file

    graph = check_file(str(spec))
    save_weights(str(folder / "w.safetensors"), initial_weights(graph, seed=3))
    assert main(["compile", str(spec), "--external-data", "-o", str(folder / "m.onnx")]) == 0
    np.save(folder / "x.npy", np.zeros((1, 3, H, W), np.float32))
    (folder / "imgs").mkdir()
    Image.new("RGB", (20, 15), (200, 30, 60)).save(folder / "imgs" / "scores.png")
    data = [p.name for p in folder.iterdir() if p.name.endswith(".data")]
    assert len(data) == 1
    return folder, data[0]


# Each command that writes: its arguments (OUT where the output goes), the inputs it reads,
# and the extension its output must have (a link to an input is named with it; an input whose
# name lacks it can't be named as the output itself: the command refuses the extension first).
# {data} is the model's data file.
WRITERS = {
    "compile": (["compile", "s.yaml", "-o", "OUT"], ["s.yaml", "labels.txt"], ""),
    "compile --weights --external-data": (
        ["compile", "s.yaml", "--weights", "w.safetensors", "--external-data", "-o", "OUT"],
        ["s.yaml", "labels.txt", "w.safetensors"], ""),
    "graph -o": (["graph", "s.yaml", "-o", "OUT"], ["s.yaml", "labels.txt"], ""),
    "expand -o": (["expand", "s.yaml", "-o", "OUT"], ["s.yaml", "labels.txt"], ""),
    "weights SPEC": (["weights", "s.yaml", "--weights", "w.safetensors", "-o", "OUT"],
                     ["s.yaml", "labels.txt", "w.safetensors"], ".safetensors"),
    "weights MODEL": (["weights", "m.onnx", "-o", "OUT"], ["m.onnx", "{data}"], ".npz"),
    "run SPEC --output": (["run", "s.yaml", "--weights", "w.safetensors", "--input", "x.npy",
                           "--output", "OUT"],
                          ["s.yaml", "labels.txt", "w.safetensors", "x.npy"], ""),
    "run MODEL --output": (["run", "m.onnx", "--input", "x.npy", "--output", "OUT"],
                           ["m.onnx", "{data}", "x.npy"], ""),
    "run --image --output": (["run", "s.yaml", "--image", "imgs/scores.png", "--output", "OUT"],
                             ["s.yaml", "labels.txt", "imgs/scores.png"], ".csv"),
    "run --image --maps": (["run", "s.yaml", "--image", "imgs/scores.png", "--layers", "scores",
                            "--maps", "DIR"],
                           ["s.yaml", "labels.txt", "imgs/scores.png"], "scores.png"),
    "run --image --masks": (["run", "m.onnx", "--image", "imgs/scores.png", "--masks", "DIR"],
                            ["m.onnx", "{data}", "imgs/scores.png"], "scores.png"),
}


def _cases():
    for command, (_, reads, ext) in WRITERS.items():
        for read in reads:
            for way in ("same path", "symbolic link", "hard link"):
                if way == "same path" and not _takes(read, ext):
                    continue
                yield pytest.param(command, read, way, id=f"{command}: {way} to {read}")
        # /dev/null itself where the command takes any name, else a link to it; a pipe
        yield pytest.param(command, "/dev/null", "symbolic link" if ext else "same path",
                           id=f"{command}: /dev/null")
        yield pytest.param(command, "a named pipe", "path", id=f"{command}: a named pipe")


def _takes(name: str, ext: str) -> bool:
    """Whether the command may be given `name` itself as its output."""
    if ext == "scores.png":  # a folder's file: the image's folder holds scores.png
        return name == "imgs/scores.png"
    return name.endswith(ext)


def _snapshot(folder: Path) -> dict[str, tuple]:
    return {str(p.relative_to(folder)): (p.is_symlink(), p.read_bytes() if p.is_file() and not
                                         p.is_symlink() else os.readlink(p) if p.is_symlink()
                                         else None)
            for p in sorted(folder.rglob("*"))}


@posix
@pytest.mark.parametrize("command, read, way", list(_cases()))
def test_no_output_replaces_an_input_or_a_non_regular_file(inputs, tmp_path, capsys,
                                                           monkeypatch, command, read, way):
    folder, data = inputs
    argv, _, ext = WRITERS[command]
    read = read.replace("{data}", data)
    work = tmp_path / "work"  # a copy: each case starts from the same files
    subprocess.run(["cp", "-a", str(folder), str(work)], check=True)
    monkeypatch.chdir(work)
    if ext == "scores.png":  # the output is DIR/scores.png
        out_dir = "imgs" if way == "same path" else "out"
        if way != "same path":
            (work / "out").mkdir()
            _point(work / "out" / "scores.png", read, way, work)
        argv = [out_dir if a == "DIR" else a for a in argv]
    else:
        out = read if way == "same path" else f"o{ext or '.out'}"
        if way != "same path":
            _point(work / out, read, way, work)
        argv = [out if a == "OUT" else a for a in argv]
    before = _snapshot(work)
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert out == "", out  # refused before any work: no prediction, no map printed first
    # (onnx refuses to read a data file with several hard links, "a potential hardlink
    # attack", before `netc weights` writes anything: E604)
    codes = ("E603", "E604") if (command, read, way) == ("weights MODEL", data, "hard link") \
        else ("E603",)
    assert status == 1 and any(f"error[{c}]" in err for c in codes), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert _snapshot(work) == before  # every input (and link) as it was
    assert netc_files(work) == []


def _point(link: Path, read: str, way: str, work: Path) -> None:
    """Make `link` lead to `read` (an input in `work`, or /dev/null), or make it a named
    pipe."""
    if read == "a named pipe":
        os.mkfifo(link)
        return
    target = read if os.path.isabs(read) else str(work / read)
    if way == "hard link":
        os.link(target, link)
    else:  # (also "path" to /dev/null: a link to it, as a user's output may be)
        os.symlink(target, link)


@posix
@pytest.mark.parametrize("target", ["/dev/null", "a named pipe", "a socket", "a folder"])
def test_paths_that_are_not_regular_files_are_refused_before_the_work(tmp_path, capsys,
                                                                      target):
    """The output path itself is the device, pipe, socket or folder: E603 before a model
    is compiled, each with its hint; /dev/null (a user may mean "discard") is refused like
    any device, with the ways to check without writing."""
    import socket

    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("labels: labels.txt\n", ""), encoding="utf-8")
    out = tmp_path / "out"
    sock = None
    if target == "a named pipe":
        os.mkfifo(out)
    elif target == "a socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(out))
    elif target == "a folder":
        out.mkdir()
    else:
        out = Path(target)
    try:
        status, err = _status(capsys, ["compile", spec, "-o", out])
    finally:
        if sock is not None:
            sock.close()
    assert status == 1 and err.count("error[E603]") == 1, err
    kind = {"/dev/null": "a character device", "a named pipe": "a named pipe (FIFO)",
            "a socket": "a socket", "a folder": "a folder"}[target]
    assert f"cannot write '{out}': it is {kind}, not a regular file" in err, err
    if target == "/dev/null":
        assert "netc check SPEC" in err
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    elif target == "a folder":
        assert f"hint: name a file in it: {out}/NAME.onnx" in err
    else:
        assert stat.S_ISFIFO(out.lstat().st_mode) or stat.S_ISSOCK(out.lstat().st_mode)
    assert netc_files(tmp_path) == []


@posix
@pytest.mark.parametrize("out", ["/dev/stdout", "out.onnx"])
def test_the_output_is_not_the_commands_own_standard_output(tmp_path, out):
    """`-o /dev/stdout` with standard output redirected to a file leads to that file (as root,
    replacing /dev/stdout would replace the link in /dev itself); `-o out.onnx > out.onnx`
    too: E603, and the file keeps what netc printed."""
    if out == "/dev/stdout" and os.geteuid() == 0:
        pytest.skip("as root, a regression would replace /dev/stdout of this machine")
    (tmp_path / "s.yaml").write_text(SPEC.replace("labels: labels.txt\n", ""), "utf-8")
    with open(tmp_path / "out.onnx", "wb") as stdout:
        proc = subprocess.run([sys.executable, "-m", "netc", "compile", "s.yaml", "-o", out],
                              cwd=tmp_path, env=ENV, stdout=stdout, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"error[E603]: cannot write '{out}': it is this command's standard output" \
        in proc.stderr
    assert os.path.islink("/dev/stdout") or not os.path.lexists("/dev/stdout")
    assert (tmp_path / "out.onnx").read_bytes() == b""
    assert sorted(os.listdir(tmp_path)) == ["out.onnx", "s.yaml"]


@posix
def test_the_hint_names_a_file_that_works(tmp_path, capsys, monkeypatch):
    """`compile s.yaml -o s.yaml` suggests s.onnx; following the hint writes the model."""
    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text(SPEC.replace("labels: labels.txt\n", ""), encoding="utf-8")
    before = Path("s.yaml").read_bytes()
    status, err = _status(capsys, ["compile", "s.yaml", "-o", "s.yaml"])
    assert status == 1, err
    assert ("error[E603]: cannot write 's.yaml': it is the spec this command reads, and netc "
            "never replaces one of its inputs") in err
    assert "hint: write to another file: s.onnx" in err
    assert Path("s.yaml").read_bytes() == before
    assert _status(capsys, ["compile", "s.yaml", "-o", "s.onnx"])[0] == 0
    onnx.checker.check_model(onnx.load("s.onnx"), full_check=True)


@posix
def test_a_default_output_name_that_is_the_spec(tmp_path, capsys, monkeypatch):
    """`netc compile s.onnx` of a spec file named s.onnx: the default output, the spec
    file's stem + .onnx, is the spec itself: E603, and the spec as it was."""
    monkeypatch.chdir(tmp_path)
    Path("s.onnx").write_text(SPEC.replace("labels: labels.txt\n", ""), encoding="utf-8")
    before = Path("s.onnx").read_bytes()
    status, err = _status(capsys, ["compile", "s.onnx"])
    assert status == 1 and "error[E603]: cannot write 's.onnx': it is the spec" in err, err
    assert Path("s.onnx").read_bytes() == before and sorted(os.listdir()) == ["s.onnx"]


@posix
def test_stale_data_files_are_never_an_input(tmp_path, capsys, monkeypatch):
    """A compile removes the data file of the model it replaces (`<model>.<16 hex>.data`),
    but never one it reads: a spec so named."""
    monkeypatch.chdir(tmp_path)
    text = SPEC.replace("labels: labels.txt\n", "")
    Path("m.onnx.0123456789abcdef.data").write_text(text, encoding="utf-8")
    assert _status(capsys, ["compile", "m.onnx.0123456789abcdef.data", "--external-data",
                            "-o", "m.onnx", "--seed", "1"])[0] == 0
    first = sorted(set(os.listdir()) - {"m.onnx", "m.onnx.0123456789abcdef.data"})
    assert len(first) == 1
    assert _status(capsys, ["compile", "m.onnx.0123456789abcdef.data", "--external-data",
                            "-o", "m.onnx", "--seed", "2"])[0] == 0
    names = sorted(os.listdir())
    assert "m.onnx.0123456789abcdef.data" in names  # the spec
    assert first[0] not in names  # the data file of the model replaced
    assert Path("m.onnx.0123456789abcdef.data").read_text(encoding="utf-8") == text
    assert len(names) == 3


def _data_locations(model: Path) -> set[str]:
    m = onnx.load(str(model), load_external_data=False)
    return {e.value for t in m.graph.initializer for e in t.external_data if e.key == "location"}


def test_replacing_a_model_removes_only_the_data_it_referenced(tmp_path, capsys, monkeypatch):
    """A recompile with --external-data removes the data file the replaced model referenced,
    and no other: not a data file no model referenced (a killed writer's, one copied in),
    and not the old data file while a copy of the old model (`m_v1.onnx`, `m.onnx.bak`)
    still names it. The copies still load in ONNX Runtime afterwards."""
    import onnxruntime as ort

    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text(SPEC.replace("labels: labels.txt\n", ""), encoding="utf-8")
    Path("m.onnx.fedcba9876543210.data").write_bytes(b"no model names this one")
    compile_ = ["compile", "s.yaml", "--external-data", "-o", "m.onnx", "--seed"]
    assert _status(capsys, compile_ + ["1"])[0] == 0
    (first,) = _data_locations(Path("m.onnx"))
    Path("m_v1.onnx").write_bytes(Path("m.onnx").read_bytes())  # a copy of the old model
    assert _status(capsys, compile_ + ["2"])[0] == 0
    (second,) = _data_locations(Path("m.onnx"))
    assert second != first
    assert {first, second, "m.onnx.fedcba9876543210.data"} <= set(os.listdir())
    ort.InferenceSession("m_v1.onnx", providers=["CPUExecutionProvider"])  # its data is there
    # no copy names the second data file: the next compile removes it, and only it
    assert _status(capsys, compile_ + ["3"])[0] == 0
    (third,) = _data_locations(Path("m.onnx"))
    assert second not in os.listdir()
    assert {first, third, "m.onnx.fedcba9876543210.data"} <= set(os.listdir())
    for model in ("m.onnx", "m_v1.onnx"):
        ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    # an inline recompile drops the data file of the model it replaces, not the copy's
    assert _status(capsys, ["compile", "s.yaml", "-o", "m.onnx"])[0] == 0
    assert third not in os.listdir() and first in os.listdir()
    assert _data_locations(Path("m.onnx")) == set()


def test_external_data_with_every_tensor_inline_writes_no_data_file(tmp_path, capsys,
                                                                    monkeypatch):
    """--external-data moves tensors of at least emit.INLINE_BELOW bytes; where there are
    none, no (empty) data file is written that nothing would reference."""
    from netc.emit import INLINE_BELOW

    monkeypatch.chdir(tmp_path)
    Path("t.yaml").write_text("netc: 1\nname: t\ninputs:\n  x: [N, 3, 8, 8]\nlayers:\n"
                              "  - conv: {filters: 2, kernel: 1}\n", encoding="utf-8")
    assert _status(capsys, ["compile", "t.yaml", "--external-data", "-o", "t.onnx"])[0] == 0
    assert sorted(os.listdir()) == ["t.onnx", "t.yaml"]
    m = onnx.load("t.onnx")
    assert all(t.data_location == onnx.TensorProto.DEFAULT
               and len(t.raw_data) < INLINE_BELOW for t in m.graph.initializer)
    onnx.checker.check_model(m, full_check=True)


@pytest.mark.parametrize("layers", [["--layers", "scores"], []], ids=["--layers", "default"])
def test_maps_never_replace_a_file_netc_did_not_write(tmp_path, capsys, monkeypatch, layers):
    """--maps DIR replaces only the PNGs netc drew (a `netc.maps` text chunk), as --masks
    replaces only its class maps: a user's own `scores.png` (not an input) in the folder is
    E603, before the image is run (nothing on standard output), and the folder is left as it
    was; netc's own maps from an earlier run are replaced."""
    from netc.tools.maps import METADATA_KEY

    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text(SPEC.replace("labels: labels.txt\n", ""), encoding="utf-8")
    Image.new("RGB", (20, 15), (200, 30, 60)).save("photo.png")
    Path("maps").mkdir()
    argv = ["run", "s.yaml", "--image", "photo.png", "--maps", "maps", *layers]
    assert main(argv) == 0
    drawn = sorted(os.listdir("maps"))
    assert "scores.png" in drawn
    capsys.readouterr()
    assert main(argv) == 0  # its own maps: replaced
    assert sorted(os.listdir("maps")) == drawn
    capsys.readouterr()
    own = Path("mine")
    own.mkdir()
    Image.new("RGB", (5, 5), (1, 2, 3)).save(own / "scores.png")  # a PNG, not netc's
    (own / "features.png").write_bytes(b"not even a PNG")
    before = _snapshot(own)
    status = main(["run", "s.yaml", "--image", "photo.png", "--maps", "mine", *layers])
    out, err = capsys.readouterr()
    assert status == 1 and "error[E603]" in err and "a file netc did not write" in err, err
    assert "empty folder" in err and out == ""
    assert _snapshot(own) == before
    with Image.open("maps/scores.png") as image:  # (the mark the check reads)
        assert METADATA_KEY in image.info


# --- names as long as the file system takes ------------------------------------------------


@posix
@pytest.mark.parametrize("external", [False, True], ids=["inline", "external data"])
def test_an_output_name_at_the_file_systems_limit_is_written(tmp_path, capsys, external):
    """An output name that the file system takes (up to PC_NAME_MAX bytes, 255 here) is
    written, twice over (the second replaces the first and its data file): the temporary,
    lock and data files' names derived from it are shortened, keeping a hash."""
    limit = files.name_max(str(tmp_path))
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("labels: labels.txt\n", ""), encoding="utf-8")
    for length in (limit - 10, limit):
        name = "é" * ((length - 5) // 2) + "x" * ((length - 5) % 2) + ".onnx"  # 2 bytes each
        assert len(os.fsencode(name)) == length
        out = tmp_path / name
        for seed in (1, 2):
            argv = ["compile", spec, "-o", out, "--seed", seed] + ["--external-data"] * external
            status, err = _status(capsys, argv)
            assert status == 0, err
            onnx.checker.check_model(onnx.load(str(out)), full_check=True)
        names = [n for n in os.listdir(tmp_path) if n not in ("s.yaml",)]
        data = [n for n in names if n.endswith(".data")]
        assert len(data) == (1 if external else 0), names  # the first compile's: removed
        assert all(len(os.fsencode(n)) <= limit for n in names)
        assert netc_files(tmp_path) == []
        if external:
            import onnxruntime as ort

            ort.InferenceSession(str(out)).run(None, {"image": np.zeros((1, 3, H, W),
                                                                        np.float32)})
        for n in names:
            os.unlink(tmp_path / n)


def test_derived_names_fit_and_stay_apart(tmp_path):
    """files.fit: a name that fits is kept; two long names that share their beginning get
    different shortened names within the limit; a name of multibyte characters is cut
    between characters."""
    folder = str(tmp_path)
    limit = files.name_max(folder)
    assert files.fit("m.onnx", 30, folder) == "m.onnx"
    a, b = "a" * 250 + "1.onnx", "a" * 250 + "2.onnx"
    fa, fb = files.fit(a, 30, folder), files.fit(b, 30, folder)
    assert fa != fb and len(fa) + 30 <= limit and len(fb) + 30 <= limit
    wide = files.fit("ü" * 200, 30, folder)
    assert len(os.fsencode(wide)) + 30 <= limit and wide.startswith("ü") and "\ufffd" not in wide
    assert os.path.basename(files._temp_name(folder, a)).endswith(files.TMP_SUFFIX)
    assert len(os.path.basename(files._temp_name(folder, a))) <= limit


# --- in-place edits: netc check --update-expect ---------------------------------------------


@posix
def test_update_expect_writes_through_a_link_and_keeps_the_mode(tmp_path, capsys):
    """`--update-expect` on a spec given as a symbolic link edits the file the link leads to
    (the link stays a link), keeps that file's mode (0640 here, not 0666 less the umask), and
    says which spec it updated."""
    real = tmp_path / "specs" / "s.yaml"
    real.parent.mkdir()
    real.write_text(SPEC.replace("labels: labels.txt\n", "") + "expect:\n  params: 1\n",
                    encoding="utf-8")
    real.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    status = main(["check", "--update-expect", str(link)])
    out = capsys.readouterr().out
    assert status == 0 and f"updated {link}" in out, out
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    from netc.pipeline import check_file

    assert "params: 1\n" not in real.read_text(encoding="utf-8")
    assert check_file(str(real)).params == 16 * 3 * 9 + 16 + 4 * 16 + 4  # the expect holds
    assert netc_files(tmp_path) == []


@posix
def test_update_expect_leaves_a_read_only_spec_alone(tmp_path, capsys):
    """A spec nobody may write (mode 0444) is not edited in place, also by root (who could):
    E603, the file as it was."""
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("labels: labels.txt\n", "") + "expect:\n  params: 1\n",
                    encoding="utf-8")
    spec.chmod(0o444)
    before = spec.read_bytes()
    status = main(["check", "--update-expect", str(spec)])
    err = capsys.readouterr().err
    assert status == 1 and "error[E603]" in err and "read-only (mode 0444)" in err, err
    assert spec.read_bytes() == before


# --- the output's lock file ----------------------------------------------------------------


@posix
@pytest.mark.parametrize("what", ["a named pipe", "a symbolic link"])
def test_a_lock_file_name_taken_by_something_else(tmp_path, capsys, what):
    """`.<name>.netc-lock` beside the output is a pipe or a link: E603 naming it (no wait on
    the pipe, nothing written through the link)."""
    lock = tmp_path / ".m.onnx.netc-lock"
    if what == "a named pipe":
        os.mkfifo(lock)
    else:
        (tmp_path / "precious").write_bytes(b"mine")
        lock.symlink_to(tmp_path / "precious")
    status, err = _status(capsys, ["compile", ROOT / "specs" / "lenet5.yaml",
                                   "-o", tmp_path / "m.onnx"])
    assert status == 1 and "error[E603]" in err and ".m.onnx.netc-lock" in err, err
    assert not (tmp_path / "m.onnx").exists()
    if what != "a named pipe":
        assert (tmp_path / "precious").read_bytes() == b"mine"


@posix
def test_a_killed_writers_lock_file_is_taken_over_and_removed(tmp_path, capsys):
    """A lock file a killed writer left (unlocked) does not stop the next writer, which
    removes it when done."""
    (tmp_path / ".m.onnx.netc-lock").write_bytes(b"")
    status, err = _status(capsys, ["compile", ROOT / "specs" / "lenet5.yaml",
                                   "-o", tmp_path / "m.onnx"])
    assert status == 0, err
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


# --- (d) concurrent writers of one output ---------------------------------------------------

# One writer: runs `netc` (netc.cli.main) for each JSON argument list on standard input,
# answering each with its exit status; what netc prints goes to the file named by argv[1].
WORKER = """
import contextlib, json, sys
from netc.cli import main
log = open(sys.argv[1], "a", encoding="utf-8")
for line in sys.stdin:
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        status = main(json.loads(line))
    log.flush()
    print(status, flush=True)
"""
WRITERS_AT_ONCE = 4
ROUNDS = {"external data": 10, "inline": 10, "mixed": 5}


def _external(mode: str, k: int) -> bool:
    return mode == "external data" or (mode == "mixed" and k % 2 == 0)


@posix
def test_concurrent_writers_of_one_model_leave_one_complete_pair(tmp_path):
    """WRITERS_AT_ONCE processes compile the same spec with different seeds to the same
    output at the same moment, round after round: all external data, all inline, and half
    and half. After each round the folder holds one model, byte for byte one writer's (as it
    writes it alone), with exactly its data file, which ONNX Runtime loads and runs; every
    writer exits 0; no temporary, lock or stale data file is left."""
    import onnxruntime as ort

    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("labels: labels.txt\n", ""), encoding="utf-8")
    reference = {}  # (seed, external) -> {file name: bytes}, each written alone
    for k in range(WRITERS_AT_ONCE):
        for external in (False, True):
            alone = tmp_path / f"alone-{k}-{external}"
            alone.mkdir()
            argv = ["compile", str(spec), "-o", str(alone / "m.onnx"), "--seed", str(k)]
            assert main(argv + ["--external-data"] * external) == 0
            reference[k, external] = {p.name: p.read_bytes() for p in alone.iterdir()}
    out = tmp_path / "out"
    out.mkdir()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"log{k}")],
                                env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for k in range(WRITERS_AT_ONCE)]
    won = []
    try:
        for mode, rounds in ROUNDS.items():
            for _ in range(rounds):
                for k, worker in enumerate(workers):
                    argv = ["compile", str(spec), "-o", str(out / "m.onnx"), "--seed", str(k)]
                    worker.stdin.write(json.dumps(argv + ["--external-data"]
                                                  * _external(mode, k)) + "\n")
                for worker in workers:  # all four started before any is waited for
                    worker.stdin.flush()
                statuses = [worker.stdout.readline().strip() for worker in workers]
                assert statuses == ["0"] * WRITERS_AT_ONCE, (mode, statuses, _logs(tmp_path))
                found = {p.name: p.read_bytes() for p in out.iterdir()}
                winners = [k for k in range(WRITERS_AT_ONCE)
                           if found == reference[k, _external(mode, k)]]
                assert len(winners) == 1, (mode, sorted(found))
                won.append(winners[0])
                sess = ort.InferenceSession(str(out / "m.onnx"))
                (scores,) = sess.run(None, {"image": np.ones((1, 3, H, W), np.float32)})
                assert scores.shape == (1, 4, H, W) and np.isfinite(scores).all()
    finally:
        for worker in workers:
            worker.stdin.close()
            worker.wait(timeout=60)
            worker.stdout.close()
    logs = _logs(tmp_path)
    assert "Traceback" not in logs and "internal error" not in logs, logs
    print(f"winners by round: {won}")


def _logs(folder: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("log*")))


# --- signals ---------------------------------------------------------------------------------


@posix
def test_main_restores_the_signal_handlers_and_keeps_an_ignored_hangup(tmp_path):
    """`main` handles SIGTERM and SIGHUP only while it runs, and only where their default
    was in force: under `nohup` (SIGHUP ignored) a hang-up stays ignored."""
    import signal

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        seen = []
        real = signal.signal

        def spy(number, handler):
            seen.append((number, handler))
            return real(number, handler)

        signal.signal = spy
        try:
            assert main(["compile", str(ROOT / "specs" / "lenet5.yaml"), "-o",
                         str(tmp_path / "m.onnx")]) == 0
        finally:
            signal.signal = real
        assert [n for n, _ in seen] == [signal.SIGTERM, signal.SIGTERM]  # set, then restored
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
