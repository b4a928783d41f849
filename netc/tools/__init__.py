"""The commands that work over a checked graph, each in its own module: `netc summary`
(report.py), `explain`, `graph`, `schema`, `sizes`, `bench`, `check --format` (formats.py),
`check --update-expect` (expect.py), `expand` (unparse.py), and the docs generator (docs.py).

They get their graph from netc.pipeline and say about each layer what its class says; no
pipeline stage imports them (a test checks the import graph).
"""
