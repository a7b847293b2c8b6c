"""Cohorts over a finished linkage run: definitions, the entities they select, counts with
small cells suppressed, representativeness, and exports keyed per request."""

from .counts import DEFAULT_MIN_CELL, Cell, CohortCounts, cohort_counts
from .definition import CohortDefinitionError, Definition, parse_definition
from .demographics import DIMENSIONS, entity_demographics
from .evaluate import select_entities
from .export import (
    ENTITY_TABLE,
    RequestKeys,
    export_cohort,
    relabel_parties,
    relabel_tables,
)
from .representativeness import GroupShare, plot_representativeness, representativeness

__all__ = ["DEFAULT_MIN_CELL", "DIMENSIONS", "ENTITY_TABLE", "Cell", "CohortCounts",
           "CohortDefinitionError", "Definition", "GroupShare", "RequestKeys", "cohort_counts",
           "entity_demographics", "export_cohort", "parse_definition",
           "plot_representativeness", "relabel_parties", "relabel_tables",
           "representativeness", "select_entities"]
