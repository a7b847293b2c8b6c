"""One job queue in the database for every kind of job (linkage runs now; cohort exports and
risk reports next), with leases, retries after a dead worker, and supervised workers."""
