"""Activities: every side effect of a dispute (database, deadlines, email), each idempotent."""
