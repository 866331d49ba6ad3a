"""Per-system adapters. Each sub-package is loaded through the ``jghub.plugins`` entry point.

``adapters/12345`` is not a Python identifier; load it with
``importlib.import_module("adapters.12345")`` (entry points accept that form).
"""
