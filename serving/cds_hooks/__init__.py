"""CDS Hooks 2.0: the dropout-risk card in the record system, for callers authenticated by their signed JWTs."""
