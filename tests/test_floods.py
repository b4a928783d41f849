"""Floods of one mistake: a spec with thousands of the same error must cost work linear in
its size, not quadratic.

A did-you-mean searches a list of choices, some of which grow with the network (the earlier
layers for an unknown `from:`/`to:`, the outputs for an unknown name in `expect.outputs`, a
block's arguments). A run shows at most SHOW_PER_CODE diagnostics of one code
(`errors.capped`), so a hint is computed only for the diagnostics shown (`Diagnostic`'s
hints given as a function); 22,000 unknown `from:` names took 18 minutes before.

The work is counted, not timed (shared machines are noisy): the choices difflib compares
(`SequenceMatcher.set_seq1`, once per choice in `get_close_matches`) and the slips-of-the-hand
distances the layer-type hints compute (`errors.typo_cost`). Doubling the number of errors
may at most about double it.
"""

from __future__ import annotations

import difflib

import pytest

from netc import errors
from test_bad_specs import assert_user_error, run_check

HEAD = "netc: 1\nname: flood\ninputs:\n  image: [N, 3, 8, 8]\n"


def _layers(lines) -> str:
    return HEAD + "layers:\n" + "".join(f"  - {line}\n" for line in lines)


def _expect_outputs(n: int) -> str:  # n outputs, and n names in expect.outputs that are none
    names = [f"r{i}" for i in range(n)]
    return (_layers(f"{{relu: {{}}, name: r{i}}}" for i in range(n))
            + f"outputs: [{', '.join(names)}]\nexpect:\n  outputs:\n"
            + "".join(f"    nope{i}: [N, 3, 8, 8]\n" for i in range(n)))


BLOCK = ("blocks:\n  b:\n    args: {filters: int}\n"
         "    layers:\n      - conv: {filters: $filters, kernel: 3, pad: 1}\n")

# (code, spec of n such errors, text the output shows: a hint that was computed when shown)
FLOODS = {
    "from": ("E111", lambda n: _layers(f"relu: {{from: nolayer{i}}}" for i in range(n)), None),
    "to": ("E111", lambda n: _layers(f"resize: {{to: nolayer{i}}}" for i in range(n)), None),
    "type": ("E107", lambda n: _layers(f"cnov{i}: {{filters: 4}}" for i in range(n)), None),
    "defaults type": ("E107", lambda n: HEAD + "defaults:\n" + "".join(
        f"  cnov{i}: {{}}\n" for i in range(n)) + "layers:\n  - relu\n", None),
    "attribute": ("E102", lambda n: _layers(f"conv: {{filters: 4, kernel: 3, kernal{i}: 3}}"
                                            for i in range(n)), None),
    "attribute hint": ("E102", lambda n: _layers("conv: {filters: 4, kernal: 3}"
                                                 for i in range(n)), "did you mean 'kernel'?"),
    "choice": ("E105", lambda n: _layers(f"conv: {{filters: 4, kernel: 3, round: flor{i}}}"
                                         for i in range(n)), None),
    "initialiser": ("E105", lambda n: _layers(f"conv: {{filters: 4, kernel: 3, init: "
                                              f"he_nromal{i}}}" for i in range(n)), None),
    "block argument": ("E102", lambda n: HEAD + BLOCK + "layers:\n" + "".join(
        f"  - b: {{filters: 4, filtres{i}: 4}}\n" for i in range(n)), None),
    "top key": ("E102", lambda n: _layers(["relu"]) + "".join(f"x{i}: 1\n" for i in range(n)),
                None),
    "allow": ("E105", lambda n: _layers(["relu"]) + "allow: ["
              + ", ".join(f"W9{i:04d}" for i in range(n)) + "]\n", None),
    "expect output": ("E403", _expect_outputs, None),
}


def _work(monkeypatch, capsys, tmp_path, text: str, code: str, shows) -> int:
    """`netc check` of `text` in this process: the choices compared for its hints."""
    count = [0]
    set_seq1, typo_cost = difflib.SequenceMatcher.set_seq1, errors.typo_cost

    def counting_seq1(self, a):
        count[0] += 1
        return set_seq1(self, a)

    def counting_typo(a, b):
        count[0] += 1
        return typo_cost(a, b)

    monkeypatch.setattr(difflib.SequenceMatcher, "set_seq1", counting_seq1)
    monkeypatch.setattr(errors, "typo_cost", counting_typo)
    path = tmp_path / f"flood{len(text)}.yaml"
    path.write_text(text, encoding="utf-8")
    status, output = run_check(capsys, path)
    monkeypatch.undo()
    assert_user_error(status, output)
    assert f"error[{code}]" in output, output[:2000]
    assert f"more {code} errors like these" in output, output[-2000:]  # the cap was reached
    if shows is not None:
        assert shows in output, output[:2000]
    return count[0]


@pytest.mark.parametrize("flood", FLOODS)
def test_a_flood_of_one_error_costs_linear_work(flood, monkeypatch, capsys, tmp_path):
    code, make, shows = FLOODS[flood]
    n = 300  # > SHOW_PER_CODE, so most are never shown
    assert n > errors.SHOW_PER_CODE
    once = _work(monkeypatch, capsys, tmp_path, make(n), code, shows)
    twice = _work(monkeypatch, capsys, tmp_path, make(2 * n), code, shows)
    # (+ 60: the constant part, such as a layer-type hint's one pass over the registry)
    assert twice <= 2.2 * once + 60, (once, twice)
