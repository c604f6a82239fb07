"""Tests of workflows/: the dispute's lifecycle, its Updates and validators, replay of stored histories, continue-as-new, races between people acting at once."""
