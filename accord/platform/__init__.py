"""The platform every slice stands on: settings, the database and its schema's version
(`schema`), the Temporal client (`temporal`), a process's main loop (`processes`), logs, traces,
metrics and readiness (`observability`), memory figures (`heap`), and the product's words for
people (`wording`). Nothing here knows a dispute's rules; it imports only rules and models."""
