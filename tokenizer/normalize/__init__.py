"""Normalisation of identifiers before tokenizing: one normaliser for every reader."""

from .dates import DATE_ORDERS, DateOrder, parse_date
from .kinds import KINDS
from .normalizer import (
    PERSON_KINDS,
    SHIPPED_KINDS,
    NormalizedChunk,
    Normalizer,
    parse_kind_specs,
    shipped_kinds,
)

__all__ = [
    "DATE_ORDERS",
    "DateOrder",
    "KINDS",
    "NormalizedChunk",
    "Normalizer",
    "PERSON_KINDS",
    "SHIPPED_KINDS",
    "parse_date",
    "parse_kind_specs",
    "shipped_kinds",
]
