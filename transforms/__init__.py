"""Transforms: the declarative mapping language (:mod:`transforms.mapping`), safe XML ↔ JSON
(:mod:`transforms.xmljson`), governance cleaning steps (:mod:`transforms.cleaning`), and what
they share: date parsing (:mod:`transforms.dates`), masking and hashing
(:mod:`transforms.masking`) and the built-in value functions (:mod:`transforms.functions`).
See ``docs/mapping.md``. Importing this package imports none of them."""

__all__: list[str] = []
