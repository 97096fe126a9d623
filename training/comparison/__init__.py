"""The parts of the feature-set comparison (``training.jobs.compare``): sets, folds, fits, statistics, reports."""
