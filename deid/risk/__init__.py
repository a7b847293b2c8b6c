"""Re-identification risk of a released table: privacy models (k-anonymity, l-diversity,
t-closeness, beta-likeness, delta-disclosure), ARX's prosecutor, journalist and marketer risk
and population uniqueness, the HIPAA Safe Harbor check, and generalisation to a target."""
