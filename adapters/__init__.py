"""Per-system adapters. Each sub-package is loaded through the ``jghub.plugins`` entry point.

``adapters/12345`` is not a Python identifier; load it with
``importlib.import_module("adapters.12345")``; setuptools refuses it as an entry-point value,
so its entry point names ``adapters.entry_points:hotline12345``, which imports it.
"""
