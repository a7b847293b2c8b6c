"""Which entities of a finished linkage run a cohort definition selects.

``members`` maps every linked record to its entity (party, record_id, entity); ``attributes``
holds each party's attribute rows. Criteria are evaluated with Arrow over whole columns;
only the date windows of ``within`` look at pairs of rows, per entity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from .definition import Criterion, Definition, PartyCriteria, Within

__all__ = ["matching_rows", "select_entities", "entity_of_records"]


def _mask(table: pa.Table, criterion: Criterion) -> pa.Array:
    column = table[criterion.column]
    masks = []
    if criterion.values:
        masks.append(pc.is_in(column, value_set=pa.array(criterion.values, column.type)))
    if criterion.prefixes:
        starts = [pc.starts_with(column, p) for p in criterion.prefixes]
        masks.append(starts[0] if len(starts) == 1 else _or_all(starts))
    for bound, compare in ((criterion.minimum, pc.greater_equal),
                           (criterion.maximum, pc.less_equal)):
        if bound is not None:
            masks.append(compare(column, pa.scalar(bound, column.type)))
    if criterion.present:
        masks.append(pc.is_valid(column))
    combined = masks[0]
    for mask in masks[1:]:
        combined = pc.and_kleene(combined, mask)
    return pc.fill_null(combined, False)


def _or_all(masks: list[pa.Array]) -> pa.Array:
    combined = masks[0]
    for mask in masks[1:]:
        combined = pc.or_kleene(combined, mask)
    return combined


def matching_rows(table: pa.Table, criteria: PartyCriteria) -> pa.Table:
    """The attribute rows that meet the criteria (``all`` on the same row, or ``any``)."""
    masks = [_mask(table, c) for c in criteria.criteria]
    combined = masks[0]
    for mask in masks[1:]:
        combined = (pc.and_kleene if criteria.mode == "all" else pc.or_kleene)(combined, mask)
    return table.filter(pc.fill_null(combined, False))


def entity_of_records(members: pa.Table, party: str) -> dict[str, str]:
    rows = members.filter(pc.equal(members["party"], party))
    return dict(zip(rows["record_id"].to_pylist(), rows["entity"].to_pylist(), strict=True))


def _entities(rows: pa.Table, entity_of: Mapping[str, str]) -> set[str]:
    return {entity_of[r] for r in rows["record_id"].to_pylist() if r in entity_of}


def _dates(rows: pa.Table, column: str, entity_of: Mapping[str, str]
           ) -> dict[str, list[date]]:
    found: dict[str, list[date]] = defaultdict(list)
    for record, day in zip(rows["record_id"].to_pylist(), rows[column].to_pylist(),
                           strict=True):
        if day is not None and record in entity_of:
            found[entity_of[record]].append(day)
    return found


def _meets(window: Within, after: list[date], then: list[date]) -> bool:
    return any(window.low_days <= (b - a).days <= window.high_days
               for a in after for b in then)


def select_entities(definition: Definition, members: pa.Table,
                    attributes: Mapping[str, pa.Table]) -> list[str]:
    """The cohort's entities, sorted (the same definition always gives the same list)."""
    entity_of = {party: entity_of_records(members, party)
                 for party in {*definition.require, *definition.exclude}}
    matched = {party: matching_rows(attributes[party], criteria)
               for party, criteria in definition.require.items()}
    selected: set[str] | None = None
    for party, rows in matched.items():
        found = _entities(rows, entity_of[party])
        selected = found if selected is None else selected & found
    assert selected is not None
    for window in definition.within:
        after = _dates(matched[window.after_party], window.after_column,
                       entity_of[window.after_party])
        then = _dates(matched[window.then_party], window.then_column,
                      entity_of[window.then_party])
        selected = {e for e in selected if _meets(window, after.get(e, []), then.get(e, []))}
    for party, criteria in definition.exclude.items():
        selected -= _entities(matching_rows(attributes[party], criteria), entity_of[party])
    return sorted(selected)
