"""FHIR R4 in and out: Bundles of Observations to sessions, served risks to RiskAssessments (fhir.resources R4B)."""
