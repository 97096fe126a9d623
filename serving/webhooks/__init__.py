"""Alerts to clinics' webhook endpoints: an outbox written with the session, delivered by a background worker."""
