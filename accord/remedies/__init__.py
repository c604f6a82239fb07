"""The remedies slice: where an ordered remedy is carried out (`adapters`: the ledger, a
webhook, and the `RemedyAdapter` protocol a new kind implements)."""
