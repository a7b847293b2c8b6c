"""What keeps the service's data to those allowed: API tokens, entity pseudonyms, the audit
log, limits on failed authentication, security headers."""
