"""Online resharding: placement epochs, the phase machine and the engine that moves records."""
