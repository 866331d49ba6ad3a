"""Public resource trading platform (公共资源交易) adapter. Not built yet: the adapters issue."""
