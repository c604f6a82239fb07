"""The precedents slice: every settled or ruled dispute recorded as a precedent compliance can
search (`library`: the record, its facets and search texts), anonymised for partners
(`anonymity`), and matched against an open dispute's facts (`similarity`). The search queries
over precedents and disputes, by database backend, are `accord.precedents.search`."""
