"""Generic transports that ship with the core (more arrive with the onboarding issue)."""
