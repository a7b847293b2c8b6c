"""The service layer: queries and changes, one commit per request, domain errors
(``api.errors``) instead of HTTP. Routers call these; so can tests and the CLI."""
