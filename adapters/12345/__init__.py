"""12345 government service hotline (12345政务服务便民热线) adapter: work orders (工单) arrive
from the provincial 12345 platform and are dispatched to the responsible department; their
lifecycle (签收, 办理, 回复, 督办, 延期申请, 退回, 办结, 回访, 评价, 发回重办) goes back.

``12345`` is not a Python identifier: import the modules with
``importlib.import_module("adapters.12345.plugin")``; the hub loads the plugin through its
entry point. See ``docs/adapters/12345.md``.
"""
