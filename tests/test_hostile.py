"""Hostile inputs that can't be committed as files, and hostile weights files and ONNX models.

The committed hostile specs live in tests/hostile/ and run with the catalogue of bad specs
(tests/test_bad_specs.py). Here the tests write their input themselves: 100,000-deep nesting,
a million keys, a sparse 8 GiB file, NUL and other control characters, bytes that are not
UTF-8; weights files that lie about their sizes; ONNX models whose external data points outside
their folder. Every one must end in exit 1 and one positioned (or named) error, fast, without
allocating what the file declares and without a traceback. docs/robustness.md lists them all.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest

from netc import load
from netc.cli import main
from test_bad_specs import (Expectations, Expected, assert_matches, assert_user_error,
                            reported, run_check)
from test_weights import spec  # noqa: F401  (a fixture)
from test_weights import _npy, _npy_header, _peak_rss_mib, _Touch, _zip, load_err, template

ROOT = Path(__file__).resolve().parent.parent
HEAD = "netc: 1\nname: hostile\ninputs:\n  image: [N, 3, 32, 32]\n"
DEPTH = 100_000

# The work a refusal may do is bounded by counting it, not by timing it (shared machines are
# noisy): YAML events the loader consumes, bytes the process reads (/proc/self/io), memory
# it allocates (tracemalloc) or holds (peak RSS), layers the expander makes.


def counted_check(capsys, path, monkeypatch) -> tuple[int, str, int]:
    """`netc check path` in-process: (status, output, YAML events the loader consumed)."""
    parser = load._parser
    events = [0]

    def counting(text):
        for event in parser(text):
            events[0] += 1
            yield event

    monkeypatch.setattr(load, "_parser", counting)
    status, output = run_check(capsys, path)
    return status, output, events[0]


def bytes_read() -> int | None:
    """Bytes this process has read with read(2) and friends so far (Linux: /proc/self/io's
    rchar), or None where the file does not exist."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            fields = dict(line.split(": ") for line in f.read().splitlines())
    except OSError:
        return None
    return int(fields["rchar"])


def one_error(output: str, path) -> tuple[str, int, int, str]:
    [diag] = reported(output, str(path))
    return diag.code, diag.line, diag.col, diag.message


# --- specs: nesting, size, node count -----------------------------------------------------------

# (text, line, columns): libyaml stops flow collections at its own limit of 1,000 levels
# while looking ahead, before netc sees the 65th level; PyYAML's parser is reported at the 64th
NESTING = {
    "flow lists": ("x: " + "[" * DEPTH + "]" * DEPTH + "\n", 1, {67, 1003}),
    "block lists": ("- " * DEPTH + "x\n", 1, {129}),
    "flow mappings": ("{a: " * DEPTH + "1" + "}" * DEPTH + "\n", 1, {257}),
}


@pytest.mark.parametrize("case", list(NESTING))
def test_100000_deep_nesting_is_refused_at_the_limit(tmp_path, capsys, monkeypatch, case):
    """Refused at the 65th level, having read no further: at most two YAML events per level
    (a key and its mapping) up to the limit, of the 100,000 levels' 200,000 events."""
    text, line, cols = NESTING[case]
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    assert len(text) < load.MAX_BYTES  # the depth is what is refused, not the size
    status, output, events = counted_check(capsys, path, monkeypatch)
    assert_user_error(status, output)
    code, got_line, col, message = one_error(output, path)
    assert (code, got_line) == ("E005", line) and col in cols, output
    assert f"nested more than {load.MAX_DEPTH} levels deep" in message
    assert events <= 2 * load.MAX_DEPTH + 8, f"{case}: {events:,} YAML events consumed"


def test_deep_nesting_in_a_real_process_exits_1(tmp_path):
    """PyYAML's C loader segfaults on deep nesting when it builds the tree itself; netc reads
    events. Checked in a real process, where a crash would show as a signal."""
    paths = []
    for i, (text, _, _) in enumerate(NESTING.values()):
        paths.append(tmp_path / f"deep{i}.yaml")
        paths[-1].write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "netc", "check", *map(str, paths)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert proc.stderr.count("error[E005]") == len(paths)


def test_a_million_keys(tmp_path, capsys, monkeypatch):
    """A million keys can't fit in 1 MiB: refused by its size, before parsing (no YAML event
    is consumed)."""
    path = tmp_path / "keys.yaml"
    path.write_text("".join(f"k{i}: 1\n" for i in range(1_000_000)), encoding="utf-8")
    status, output, events = counted_check(capsys, path, monkeypatch)
    assert_user_error(status, output)
    assert one_error(output, path)[:3] == ("E002", 1, 1)
    assert events == 0


def test_keys_past_the_node_limit(tmp_path, capsys, monkeypatch):
    """60,000 keys fit in 1 MiB but pass the node limit: a key and its value are two nodes
    after the root mapping, so node 100,001 is the value of key 50,000 (line 50,000). The
    loader stops there: the events of the 100,001 nodes and the stream's start, no more."""
    path = tmp_path / "keys.yaml"
    path.write_text("".join(f"k{i}: 1\n" for i in range(60_000)), encoding="utf-8")
    status, output, events = counted_check(capsys, path, monkeypatch)
    want = Expected("E010", 50_000, 9, f"more than {load.MAX_NODES:,} YAML nodes")
    assert_matches(path, status, output, Expectations([want], [], []),
                   path.read_text().splitlines())
    assert events <= load.MAX_NODES + 8, f"{events:,} YAML events consumed"


def test_sparse_8_gib_file_is_refused_without_reading_it(tmp_path, capsys, monkeypatch):
    """Refused after reading the limit and one byte (the process's read bytes, rchar, grow by
    about 1 MiB, not 8 GiB), before parsing, without holding it in memory."""
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.write(HEAD.encode())
        f.truncate(8 << 30)  # sparse: no disk space, but 8 GiB to whoever reads it all
    rss, before = _peak_rss_mib(), bytes_read()
    status, output, events = counted_check(capsys, path, monkeypatch)
    after = bytes_read()
    assert_user_error(status, output)
    assert one_error(output, path)[:3] == ("E002", 1, 1)
    assert events == 0 and _peak_rss_mib() - rss < 64
    if before is not None:
        assert after - before < load.MAX_BYTES + (1 << 20), f"read {after - before:,} bytes"


# --- specs: characters and encodings -----------------------------------------------------------


@pytest.mark.parametrize("char, shown", [("\x00", "U+0000"), ("\x1b", "U+001B"),
                                         ("\x7f", "U+007F"), ("\ufffe", "U+FFFE")])
def test_control_characters_are_positioned(tmp_path, capsys, char, shown):
    path = tmp_path / "control.yaml"
    path.write_text(HEAD + f"layers:\n  - relu:\n    name: re{char}lu\n", encoding="utf-8")
    status, output = run_check(capsys, path)
    assert_user_error(status, output)
    code, line, col, message = one_error(output, path)
    assert (code, line, col) == ("E003", 7, 13), output
    assert f"the character {shown} is not allowed in a YAML file" in message


@pytest.mark.parametrize("data, byte, line, col", [
    ("UTF-16".encode("utf-16"), 0xFF, 1, 1),  # a byte-order mark, then two bytes a character
    (HEAD.encode() + b"layers:\n  - \xc0\xaf\n", 0xC0, 6, 5),  # an overlong '/'
    (HEAD.encode() + b"layers:\n  - relu\n# \xed\xa0\x80\n", 0xED, 7, 3),  # a surrogate
    (HEAD.encode() + b"layers:\n  - relu\n# \xf0\x9f\x98", 0xF0, 7, 3),  # cut mid-character
], ids=["utf-16", "overlong", "surrogate", "truncated"])
def test_bytes_that_are_not_utf8(tmp_path, capsys, data, byte, line, col):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(data)
    status, output = run_check(capsys, path)
    assert_user_error(status, output)
    assert one_error(output, path) == ("E009", line, col,
                                       f"byte 0x{byte:02x} is not valid UTF-8"), output


# --- specs: sizes refused before anything is allocated ------------------------------------------


@pytest.mark.parametrize("name, traced", [("bad/e308_dense_1e12_weights", True),
                                           ("hostile/e308_params_over_the_total", True),
                                           ("hostile/e112_expansion_bomb", False)])
def test_huge_networks_are_refused_small(tmp_path, capsys, monkeypatch, name, traced):
    """`netc compile` of a dense layer of 10^12 weights (4 TB), of 2^32 weights in all, of a
    network that would expand to 10^12 layers: refused by arithmetic, allocating almost
    nothing (tracemalloc sees numpy's buffers too; the expansion bomb's 100,000 layers are too
    many objects to trace quickly, so its peak RSS is measured), making no more layers than
    the limit (the expander's layers are counted) and writing nothing."""
    from netc import expand

    path = ROOT / "tests" / f"{name}.yaml"
    out = tmp_path / "out.onnx"
    main(["check", str(path)])  # imports and caches warmed up: what is measured is the refusal
    capsys.readouterr()
    made = [0]
    instance = expand.Expander._instance

    def counting(self, *args, **kw):
        made[0] += 1
        return instance(self, *args, **kw)

    monkeypatch.setattr(expand.Expander, "_instance", counting)
    rss = _peak_rss_mib()
    if traced:
        tracemalloc.start()
    try:
        status = main(["compile", str(path), "-o", str(out)])
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
    finally:
        tracemalloc.stop()
    output = capsys.readouterr().err
    assert_user_error(status, output)
    assert peak < 16 << 20, f"refusing it allocated {peak:,} bytes"
    assert _peak_rss_mib() - rss < 256
    # (a layer past the limit is made, refused, for each block the expansion is inside)
    assert made[0] <= expand.MAX_LAYERS + 1000, f"{made[0]:,} layers made"
    assert not out.exists() and not list(tmp_path.iterdir())


# --- weights files (more in tests/test_weights.py) ----------------------------------------------


def test_pickled_npy_as_weights_is_refused_unread(spec, tmp_path, capsys):
    marker = tmp_path / "unpickled"
    path = tmp_path / "w.npy"
    path.write_bytes(_npy(np.array([_Touch(marker)], dtype=object), allow_pickle=True))
    code, err = load_err(capsys, spec, path)
    assert code == 1 and "error[E507]" in err and err.count("error[") == 1
    assert not marker.exists()


def _template_npz(spec, tmp_path, replace: dict[str, bytes]) -> dict[str, bytes]:
    """The entries of an .npz of the spec's template, some replaced by raw .npy bytes."""
    tensors = template(spec, tmp_path)
    entries = {f"{k}.npy": _npy(v) for k, v in tensors.items()}
    entries.update(replace)
    return entries


def _refused(capsys, spec, path, says: str, code: str = "E506") -> None:
    rss, before = _peak_rss_mib(), bytes_read()
    tracemalloc.start()
    try:
        status, err = load_err(capsys, spec, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    after = bytes_read()
    assert status == 1, err
    assert f"error[{code}]" in err and says in err and err.count("error[") == 1, err
    assert peak < 16 << 20 and _peak_rss_mib() - rss < 64
    if before is not None:  # the spec and the file's headers, not what they declare
        assert after - before < 4 << 20, f"read {after - before:,} bytes"
    assert not (path.parent / "out.onnx").exists()


def test_object_dtype_header_without_a_pickle(spec, tmp_path, capsys):
    """An .npy header declaring Python objects is refused from the header alone."""
    header = _npy_header((4, 3, 3, 3), descr="|O")
    path = tmp_path / "o.npz"
    _zip(path, _template_npz(spec, tmp_path, {"features_conv.weight.npy": header + bytes(864)}))
    _refused(capsys, spec, path, "holds Python objects, which netc never unpickles")


def test_truncated_npz(spec, tmp_path, capsys):
    path = tmp_path / "t.npz"
    _zip(path, _template_npz(spec, tmp_path, {}))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the central directory is gone
    _refused(capsys, spec, path, "not a valid .npz (zip) file")


def test_zip_bomb_that_lies_about_its_size(spec, tmp_path, capsys):
    """An entry that declares, in the zip headers and the .npy header alike, the 432 bytes the
    layer needs, while its deflated data expands to 256 MiB: zipfile stops at the declared
    size, where the checksum shows the entry is corrupt."""
    bomb = _npy_header((4, 3, 3, 3)) + bytes(256 << 20)
    path = tmp_path / "bomb.npz"
    _zip(path, _template_npz(spec, tmp_path, {"features_conv.weight.npy": bomb}),
         zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    lie = len(_npy_header((4, 3, 3, 3))) + 432
    name = b"features_conv.weight.npy"
    with zipfile.ZipFile(path) as z:
        local = z.getinfo(name.decode()).header_offset
    assert raw[local:local + 4] == b"PK\x03\x04"
    raw[local + 22:local + 26] = lie.to_bytes(4, "little")  # uncompressed size
    central = raw.index(b"PK\x01\x02")  # the central directory's entries, in order
    while raw[central + 46:central + 46 + len(name)] != name:
        central = raw.index(b"PK\x01\x02", central + 4)
    raw[central + 24:central + 28] = lie.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    assert zlib.crc32(bomb) != 0 and path.stat().st_size < 2 << 20
    _refused(capsys, spec, path, "Bad CRC-32")


# --- ONNX models: external data must stay in the model's folder ---------------------------------


@pytest.fixture
def external_model(tmp_path):
    """lenet5 compiled with external data into tmp/models/; returns (model path, the name of
    its first external tensor). A file `outside.data` lies in tmp/, next to the folder."""
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "m.onnx"
    assert main(["compile", str(ROOT / "specs" / "lenet5.yaml"), "-o", str(path),
                 "--external-data"]) == 0
    [data] = [p for p in folder.iterdir() if p.name.endswith(".data")]
    (tmp_path / "outside.data").write_bytes(data.read_bytes())
    model = onnx.load(str(path), load_external_data=False)
    first = next(t for t in model.graph.initializer if t.external_data)
    return path, first.name, data.name


def _relocate(path: Path, tensor: str, **fields) -> None:
    """Rewrite `tensor`'s external-data fields (location, offset, length) in place."""
    model = onnx.load(str(path), load_external_data=False)
    t = next(t for t in model.graph.initializer if t.name == tensor)
    info = {e.key: e.value for e in t.external_data}
    info.update({k: str(v) for k, v in fields.items()})
    del t.external_data[:]
    for key, value in info.items():
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())  # not onnx.save: it would write data files


def _no_reads(monkeypatch):
    """Fail the test if onnx or ONNX Runtime is asked to follow the external data."""
    import onnx.external_data_helper as helper
    import onnxruntime

    def refuse(*args, **kw):
        raise AssertionError("external data was read before it was checked")

    monkeypatch.setattr(helper, "load_external_data_for_model", refuse)
    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


ESCAPES = {
    "parent folder": (lambda folder, data: "../outside.data", "outside the model's folder"),
    "absolute path": (lambda folder, data: str(folder / data), "the absolute path"),
    "through a subfolder": (lambda folder, data: "sub/../../outside.data",
                            "outside the model's folder"),
    "symlinked file": (lambda folder, data: _link(folder / "link.data", "../outside.data"),
                       "a symbolic link that leads outside"),
    "symlinked folder": (lambda folder, data: _link(folder / "linked", "..") + "/outside.data",
                         "a symbolic link that leads outside"),
    "missing file": (lambda folder, data: "nowhere.data", "which is not a file beside the model"),
}


def _link(link: Path, target: str) -> str:
    link.symlink_to(target)
    return link.name


@pytest.mark.parametrize("command", ["weights", "run"])
@pytest.mark.parametrize("case", list(ESCAPES))
def test_external_data_outside_the_folder_is_refused(external_model, tmp_path, capsys,
                                                     monkeypatch, command, case):
    path, tensor, data = external_model
    make, says = ESCAPES[case]
    location = make(path.parent, data)
    _relocate(path, tensor, location=location)
    _no_reads(monkeypatch)
    capsys.readouterr()
    args = ["-o", str(tmp_path / "w.safetensors")] if command == "weights" else []
    status = main([command, str(path), *args])
    err = capsys.readouterr().err
    assert_user_error(status, err)
    assert err.count("error[") == 1 and "error[E604]" in err, err
    assert f"'{path}': tensor '{tensor}'" in err and repr(location) in err and says in err, err
    assert not (tmp_path / "w.safetensors").exists()


@pytest.mark.parametrize("fields, says", [
    ({"offset": 1 << 40}, "which holds"),
    ({"length": 4}, "but its external data is 4 bytes"),
    ({"offset": "x"}, "malformed external-data offset"),
], ids=["offset past the end", "length against the shape", "malformed"])
def test_external_data_ranges_are_checked(external_model, tmp_path, capsys, monkeypatch,
                                          fields, says):
    path, tensor, _ = external_model
    _relocate(path, tensor, **fields)
    _no_reads(monkeypatch)
    capsys.readouterr()
    status = main(["weights", str(path), "-o", str(tmp_path / "w.npz")])
    err = capsys.readouterr().err
    assert_user_error(status, err)
    assert err.count("error[") == 1 and "error[E604]" in err and says in err, err


@pytest.mark.parametrize("command", ["weights", "run"])
def test_a_symlink_inside_the_folder_is_refused_too(external_model, tmp_path, capsys,
                                                    monkeypatch, command):
    """Policy: no symbolic link at all in external data, even one that stays in the folder
    (onnx refuses them as well, so `netc weights` and `netc run` agree)."""
    path, tensor, data = external_model
    (path.parent / "alias.data").symlink_to(data)
    _relocate(path, tensor, location="alias.data")
    _no_reads(monkeypatch)
    capsys.readouterr()
    args = ["-o", str(tmp_path / "w.safetensors")] if command == "weights" else []
    status = main([command, str(path), *args])
    err = capsys.readouterr().err
    assert_user_error(status, err)
    assert err.count("error[") == 1 and "through a symbolic link" in err, err


def test_a_model_with_its_data_beside_it_reads_and_runs(external_model, tmp_path, capsys):
    """The check lets netc's own layout through: `netc weights` and `netc run` work."""
    path, _, _ = external_model
    assert main(["weights", str(path), "-o", str(tmp_path / "w.safetensors")]) == 0
    assert main(["run", str(path)]) == 0
    assert "Traceback" not in capsys.readouterr().err


# --- symbolic links given on the command line ---------------------------------------------------


def test_output_path_that_is_a_symlink_is_replaced_not_followed(tmp_path, capsys):
    """Policy: netc writes a new file and renames it over the path given, so a symbolic link
    there is replaced by the model; the file it pointed at is left as it was. (Atomic
    replacement can't write through a link without writing into the link target's folder.)"""
    target = tmp_path / "elsewhere" / "precious.onnx"
    target.parent.mkdir()
    target.write_bytes(b"keep me")
    out = tmp_path / "m.onnx"
    out.symlink_to(target)
    assert main(["compile", str(ROOT / "specs" / "lenet5.yaml"), "-o", str(out)]) == 0
    assert not out.is_symlink() and out.stat().st_size > 1000
    assert target.read_bytes() == b"keep me"


def test_input_files_given_as_symlinks_are_followed(spec, tmp_path, capsys):
    """Policy: a spec or weights file named on the command line is the user's choice, link or
    not; only paths found *inside* files (ONNX external data) are held to their folder."""
    template(spec, tmp_path)
    (tmp_path / "link.safetensors").symlink_to(tmp_path / "template.safetensors")
    (tmp_path / "link.yaml").symlink_to(spec)
    assert main(["compile", str(tmp_path / "link.yaml"), "--weights",
                 str(tmp_path / "link.safetensors"), "-o", str(tmp_path / "m.onnx")]) == 0


# --- the docs ------------------------------------------------------------------------------------


def test_the_robustness_doc_states_the_limits_and_lists_the_files():
    """docs/robustness.md gives the limits the code enforces, names only files that exist,
    and names (or matches with a wildcard) every committed hostile spec."""
    import fnmatch
    import re

    from netc import check, expand, expr, weights

    text = (ROOT / "docs" / "robustness.md").read_text(encoding="utf-8")
    for value in (load.MAX_BYTES, load.MAX_NODES, expand.MAX_LAYERS, expand.MAX_RANK_DIM,
                  check.MAX_TENSOR, check.MAX_PARAMS, expr.MAX_MAGNITUDE, weights.MAX_HEADER):
        assert f"{value:,}" in text, value
    for phrase in (f"{load.MAX_DEPTH} levels", f"| {expand.MAX_NESTING} |",
                   f"{expand.MAX_NAME} characters", f"{expr.MAX_TOKENS} tokens",
                   f"{expr.MAX_NESTING} levels"):
        assert phrase in text, phrase
    named = re.findall(r"`((?:bad|hostile)/[\w*]+\.yaml)`", text)
    for name in named:
        if "*" not in name:
            assert (ROOT / "tests" / name).is_file(), name
    for path in sorted((ROOT / "tests" / "hostile").glob("*.yaml")):
        assert any(fnmatch.fnmatch(f"hostile/{path.name}", n) for n in named), path.name
