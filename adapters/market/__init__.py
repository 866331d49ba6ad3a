"""Market supervision platform (市场监管) adapter. Not built yet: the platform-adapters issue."""
