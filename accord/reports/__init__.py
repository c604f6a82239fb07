"""The reports slice: the SLA and channel-health report (`sla`) and the compliance exports of
disputes, precedents and audit trails as CSV or JSON (`exports`)."""
