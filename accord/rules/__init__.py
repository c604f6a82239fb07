"""Pure rules: what may happen, computed from values alone, with no I/O and no clock.

The transition table (who may take which action at which stage), the consistency check of a
ruling against precedent, the audit chain's hashing, and a mediator's eligibility. Everything
above may import these; they import only `models` and the standard library (the layers contract
in pyproject.toml fails CI otherwise), so the workflow sandbox and the web alike can use them.
"""
