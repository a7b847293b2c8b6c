"""Normalisation of identifiers before tokenizing: one normaliser for every reader."""

from .dates import DATE_ORDERS, DateOrder, parse_date
from .kinds import KINDS
from .normalizer import (
    SHIPPED_KINDS,
    NormalizedChunk,
    Normalizer,
    choose_kinds,
    parse_kind_specs,
    shipped_kinds,
)

__all__ = [
    "DATE_ORDERS",
    "DateOrder",
    "KINDS",
    "NormalizedChunk",
    "Normalizer",
    "SHIPPED_KINDS",
    "choose_kinds",
    "parse_date",
    "parse_kind_specs",
    "shipped_kinds",
]
