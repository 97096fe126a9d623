"""The clinician dashboard at /ui: the caseload and each client's trajectory, in the browser.

``router`` holds the pages; ``STATIC_DIR`` the local CSS and JavaScript the app
mounts at /ui/static (nothing is loaded from a CDN).
"""

from dropout_risk.serving.ui.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
