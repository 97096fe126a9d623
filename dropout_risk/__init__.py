"""dropout-risk: calibrated, explained psychotherapy dropout risk from session-by-session scores.

The subpackages live in the repository's top-level folders (``features/``, ``models/``, ``training/``,
``serving/``, ``cli/``) and are installed under this one namespace (see ``[tool.setuptools]`` in
pyproject.toml), so that a researcher's own ``models`` or ``features`` module never collides with ours.
Layering: features <- models <- training, serving <- cli.
"""

__version__ = "0.1.0"
