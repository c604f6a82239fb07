"""The governance board's decisions outside disputes: exceptions to the rules of engagement."""
