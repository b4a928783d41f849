"""netc's version, in a module of its own that imports nothing: the emitter writes it into
every model (producer_version), and the package, the CLI and the report formats read it, so
no module needs to import the package itself for it."""

__version__ = "0.1.0"
