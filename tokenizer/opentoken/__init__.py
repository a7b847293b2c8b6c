"""Deterministic tokens byte-identical to OpenToken 1.12.5 (TruvetaPublic/OpenToken, MIT)."""
