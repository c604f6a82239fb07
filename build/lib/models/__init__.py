"""Accord's data: enums, database tables and the payloads that cross the Temporal boundary."""
