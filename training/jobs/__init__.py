"""The jobs the command line runs: train, promote, score and compare."""
