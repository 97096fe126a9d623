"""Monitoring after deployment (issue 13): served risks against outcomes, drift, a status per clinic."""
