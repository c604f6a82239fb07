"""The channel's own data, for conflict prevention (issue 20): deal registrations,
opportunities, leads, customer accounts and territories as the vendor's CRM knows them.

- `names`: customer names and domains normalised for matching (pure).
- `rows`: one typed row per object kind, and how CSV and Salesforce exports name its fields.
- `imports`: an import of one file (or of rows posted to the API), all or nothing, incremental
  by external id and modification time, with its progress recorded.
"""
