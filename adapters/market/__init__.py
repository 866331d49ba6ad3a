"""Market supervision platform (市场监管) adapter. Not built yet: see the platform-adapters issue."""
