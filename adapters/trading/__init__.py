"""Public resource trading platform (公共资源交易平台) adapter.

The platform sends XML documents in its own namespace (``jy``, with attachment references in
``fj``): 交易项目, 招标公告, 开标记录 and 中标结果 / 中标候选人公示. The ``trading`` adapter
parses them with the hub's safe XML settings and validates them against the XSD shipped in
``xsd/``; the mapping in the platform's system file turns them into the canonical datasets of
:mod:`adapters.trading.contracts`; routes send award results to the supervising department of
the project's type. The simulator of the platform is :mod:`adapters.trading.simulator`, the
supervising departments' systems :mod:`adapters.trading.departments`. See
``docs/adapters/trading.md``.
"""
