"""The reports slice: the SLA report (`sla`), the channel-health view of conflict alerts and
the disputes they led to or did not (`health`), and the compliance exports of disputes,
precedents and audit trails as CSV or JSON (`exports`)."""
