"""Composition roots only: what builds and runs the processes. `wiring` builds the worker and
its activities, `embedded` runs everything in one process (`make run`), `worker_health` serves
a worker's health and metrics, `keeper` restarts a child process, `mailcapture` keeps the demo's
sent mail as files."""
