"""The clinician dashboard at /ui: the caseload and each client's trajectory, in the browser.

``install(app)`` adds the pages, the local CSS and JavaScript at /ui/static
(nothing is loaded from a CDN) and the redirect to the sign-in page.
"""

from dropout_risk.serving.ui.pages import STATIC_DIR
from dropout_risk.serving.ui.routes import install, router

__all__ = ["STATIC_DIR", "install", "router"]
