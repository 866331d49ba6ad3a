"""12345 government service hotline adapter. Not built yet: see the platform-adapters issue."""
