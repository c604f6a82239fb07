"""The fault-injection suite: `make chaos` (see README, "Faults the engine survives")."""
