"""Public credit platform (信用) adapter. Not built yet: see the platform-adapters issue."""
