"""The Spark engine: the pandas engine's contract, features and scores, run per bucket of clients."""
