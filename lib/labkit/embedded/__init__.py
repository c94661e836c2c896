"""The embedded twin: an in-process platform on 127.0.0.1 for offline labs and CI.

Only :mod:`labkit.targets` imports this package (an import-linter contract).
Each emulated service is split like moto: state (``models``), wire format
(``responses``) and routes (``urls``).
"""
