"""The cohort simulator: session-by-session scores and dropout with a known true risk."""
