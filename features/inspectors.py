"""Who inspected: resolving the inspectors of each visit against the roster, and the teams as one frame.

Bureaus record who made an inspection in one of two shapes (DESIGN.md §3): a link table
``inspection_inspectors (inspection_id, inspector_id)``, or a list column ``inspections.inspectors`` holding ids
("P017;P203") or names ("张三、李四"). The import resolves both against the roster — the ``inspectors`` rows already
stored plus those of the same import (the roster file is read before the inspections):

- a list token is an ``inspector_id`` of the roster, or else the name of exactly one inspector of the inspection's
  department (any department when the inspection names none); the cell is stored as the ids it resolves to,
  ``;``-joined. A token that resolves to nobody (``unknown_inspector``) or to several namesakes
  (``ambiguous_inspector``) holds the cell back: the inspection loads without its team and the cell goes to
  quarantine with its file, line, column and value.
- a link row whose ``inspector_id`` is not on the roster is quarantined whole (``unknown_inspector``).
- **Without any roster** (no inspectors file, none stored) nothing can be checked: the ids (or names) seen are the
  inspectors, and :func:`inspector_roster` builds the roster from them when the tables are read.

:func:`inspection_teams` gives the feature build and the planner one frame of (inspection, inspector) pairs,
whichever shape the data came in. Pure code but for :class:`RosterBook`, which the importer feeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.contract import normalise_name, split_inspectors
from features.frames import is_in
from features.validate import ISSUE_COLUMNS, ChunkResult, TableValidator

__all__ = ["RosterBook", "inspection_teams", "inspector_roster", "stored_roster"]

TEAM_COLUMNS = ("inspection_id", "inspector_id")


class RosterBook:
    """The roster an import resolves against: the stored inspectors (read on first need) and the good rows of
    the import's own inspectors file. ``stored()`` returns the stored roster (columns ``inspector_id``, ``name``,
    ``department``; may be empty)."""

    def __init__(self, stored: Callable[[], pd.DataFrame] | None = None):
        self._stored = stored
        self._added: list[pd.DataFrame] = []
        self._index: tuple[set[str], dict[tuple[str, str], list[str]], dict[str, list[str]]] | None = None

    def add(self, inspectors: pd.DataFrame) -> None:
        """Good rows of this import's inspectors file (before any inspection is resolved)."""
        if len(inspectors):
            self._added.append(inspectors[["inspector_id", "name", "department"]])
            self._index = None

    def _lookup(self) -> tuple[set[str], dict[tuple[str, str], list[str]], dict[str, list[str]]]:
        if self._index is None:
            stored = self._stored() if self._stored is not None else None
            frames = [f for f in [stored, *self._added] if f is not None and len(f)]
            roster = (pd.concat(frames).drop_duplicates("inspector_id", keep="last") if frames
                      else pd.DataFrame(columns=["inspector_id", "name", "department"]))
            ids = set(roster["inspector_id"].astype(str))
            by_department: dict[tuple[str, str], list[str]] = {}
            by_name: dict[str, list[str]] = {}
            for inspector, name, department in roster[["inspector_id", "name", "department"]].itertuples(
                    index=False):
                if isinstance(name, str):
                    key = normalise_name(name)
                    by_name.setdefault(key, []).append(str(inspector))
                    dept = normalise_name(department) if isinstance(department, str) else ""
                    by_department.setdefault((dept, key), []).append(str(inspector))
            self._index = (ids, by_department, by_name)
        return self._index

    @property
    def empty(self) -> bool:
        return not self._lookup()[0]

    def resolve(self, table: str, validator: TableValidator, result: ChunkResult) -> ChunkResult:
        """``result`` with its inspectors resolved (see the module docstring); other tables unchanged. The
        validator's counters are kept in step with the issues added."""
        if table == "inspectors":
            self.add(result.good)
            return result
        if table == "inspections" and "inspectors" in validator.columns_present:
            return self._resolve_lists(validator, result)
        if table == "inspection_inspectors":
            return self._check_links(validator, result)
        return result

    def _resolve_lists(self, validator: TableValidator, result: ChunkResult) -> ChunkResult:
        good = result.good
        cells = good["inspectors"]
        has = cells.notna().to_numpy()
        if not has.any():
            return result
        departments = good["department"].to_numpy(dtype=object, na_value=None)
        verdicts: dict[tuple[str | None, str], tuple[str | None, str, str]] = {}
        resolved = np.array(cells.to_numpy(dtype=object, na_value=None), dtype=object)
        bad = np.zeros(len(good), dtype=bool)
        reasons = np.empty(len(good), dtype=object)
        rules = np.empty(len(good), dtype=object)
        for i in np.flatnonzero(has):
            key = (departments[i], resolved[i])
            if key not in verdicts:
                verdicts[key] = self._resolve_cell(resolved[i], departments[i])
            ids, rule, reason = verdicts[key]
            if ids is None:
                bad[i], reasons[i], rules[i] = True, reason, rule
                resolved[i] = None
            else:
                resolved[i] = ids
        good = good.assign(inspectors=pd.Series(resolved, index=good.index, dtype="str"))
        if not bad.any():
            return _replaced(result, good)
        issues = _issue_frame(validator, good[bad], "inspectors", cells[bad], reasons[bad], rules[bad],
                              suffix="; the inspection was loaded without its inspectors")
        validator.held_cells += int(bad.sum())
        validator.rule_counts.update(issues["rule"].tolist())
        return _replaced(result, good, issues=issues, held=int(bad.sum()))

    def _resolve_cell(self, cell: str, department: str | None) -> tuple[str | None, str, str]:
        """(the ids ``;``-joined or None, rule, reason) for one list cell of an inspection of ``department``."""
        tokens = split_inspectors(cell)
        if self.empty:  # nothing to check against: the tokens are the inspectors
            return ";".join(tokens), "", ""
        ids, by_department, by_name = self._lookup()
        dept = normalise_name(department) if department else None
        found = []
        for token in tokens:
            if token in ids:
                found.append(token)
                continue
            key = normalise_name(token)
            matches = by_department.get((dept, key), []) if dept is not None else by_name.get(key, [])
            where = f"department {department}" if dept is not None else "any department"
            if not matches:
                return None, "unknown_inspector", (f"inspector {token!r} is neither an inspector_id nor the name "
                                                   f"of an inspector of {where} on the roster")
            if len(matches) > 1:
                return None, "ambiguous_inspector", (f"{token!r} names {len(matches)} inspectors of {where} "
                                                     f"({', '.join(sorted(matches))}): write their ids instead")
            found.append(matches[0])
        return ";".join(dict.fromkeys(found)), "", ""

    def _check_links(self, validator: TableValidator, result: ChunkResult) -> ChunkResult:
        if self.empty or not len(result.good):
            return result
        ids = self._lookup()[0]
        unknown = ~result.good["inspector_id"].isin(ids).to_numpy()
        if not unknown.any():
            return result
        refused = result.good[unknown]
        reasons = np.array([f"inspector_id {v!r} is not on the roster (the inspectors file or the database)"
                            for v in refused["inspector_id"]], dtype=object)
        issues = _issue_frame(validator, refused, "inspector_id", refused["inspector_id"], reasons,
                              np.full(len(refused), "unknown_inspector", dtype=object))
        validator.quarantined_rows += len(refused)
        validator.rule_counts.update(issues["rule"].tolist())
        lines = pd.Index(refused.index, dtype="int64")
        return _replaced(result, result.good[~unknown], issues=issues, quarantined=lines)


def _issue_frame(validator: TableValidator, rows: pd.DataFrame, column: str, values: pd.Series,
                 reasons: np.ndarray, rules: np.ndarray, suffix: str = "") -> pd.DataFrame:
    """Quarantine entries (:data:`features.validate.ISSUE_COLUMNS`) for ``rows`` (good rows, indexed by line)."""
    key = rows[validator.key_columns[0]].astype(str)
    for extra in validator.key_columns[1:]:
        key = key + "|" + rows[extra].astype(str)
    raw = rows.astype(object).where(rows.notna(), None)
    raw_rows = [{k: (v.date().isoformat() if isinstance(v, pd.Timestamp) else v if v is None else str(v))
                 for k, v in row.items()} for row in raw.to_dict("records")]
    frame = pd.DataFrame({
        "table_name": validator.table,
        "source_file": validator.source_file,
        "line": rows.index.to_numpy(dtype="int64"),
        "column_name": column,
        "value": values.to_numpy(dtype=object),
        "reason": [f"{r}{suffix}" for r in reasons],
        "rule": rules,
        "row_key": key.to_numpy(dtype=object),
        "raw": raw_rows,
    })
    return frame[list(ISSUE_COLUMNS)]


def _replaced(result: ChunkResult, good: pd.DataFrame, *, issues: pd.DataFrame | None = None, held: int = 0,
              quarantined: pd.Index | None = None) -> ChunkResult:
    all_issues = result.issues
    if issues is not None and len(issues):
        all_issues = (pd.concat([result.issues, issues], ignore_index=True) if len(result.issues) else issues)
        all_issues = all_issues.sort_values("line", kind="stable").reset_index(drop=True)
    lines = result.quarantined_lines if quarantined is None else result.quarantined_lines.append(quarantined)
    return ChunkResult(good, all_issues, result.first_keys, result.rows_read, result.identical_duplicates,
                       lines, result.held_cells + held)


# ---------------------------------------------------------------------------------------------
# The teams and the roster, as the pure code reads them
# ---------------------------------------------------------------------------------------------


def inspection_teams(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame | None:
    """Who made each inspection: one row per (``inspection_id``, ``inspector_id``), from the link table and the
    list column ``inspections.inspectors`` together (duplicates once), in table order; only pairs whose inspection is in
    ``tables["inspections"]``. ``None`` when neither records anyone (the inspector features are then absent)."""
    parts = []
    links = tables.get("inspection_inspectors")
    if links is not None and len(links):
        parts.append(links[list(TEAM_COLUMNS)].astype("str"))
    inspections = tables.get("inspections")
    if inspections is not None and "inspectors" in inspections.columns:
        listed = inspections.loc[inspections["inspectors"].notna(), ["inspection_id", "inspectors"]]
        if len(listed):
            tokens = listed["inspectors"].astype("str").str.split(";").explode().str.strip()
            pairs = pd.DataFrame({"inspection_id": listed["inspection_id"].reindex(tokens.index).to_numpy(),
                                  "inspector_id": tokens.to_numpy()})
            parts.append(pairs[pairs["inspector_id"].notna() & (pairs["inspector_id"] != "")].astype("str"))
    if not parts:
        return None
    teams = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        teams = teams.drop_duplicates()
    if inspections is not None:  # (is_in: pandas' isin on string columns is a Python loop)
        teams = teams[is_in(teams["inspection_id"], inspections["inspection_id"])]
    if not len(teams):
        return None
    return teams.reset_index(drop=True)


def inspector_roster(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The roster: the ``inspectors`` table, or — without one — one built from the ids seen in the teams
    (:func:`inspection_teams`): ``department`` that of the inspector's latest inspection, ``active_from`` the
    first, ``name``, ``active_to`` and ``certified`` unknown (empty). ``None`` when there is neither."""
    roster = tables.get("inspectors")
    if roster is not None and len(roster):
        return roster
    teams = inspection_teams(tables)
    if teams is None:
        return None
    visits = teams.merge(tables["inspections"][["inspection_id", "inspected_on", "department"]], on="inspection_id")
    visits = visits.sort_values(["inspector_id", "inspected_on", "inspection_id"], kind="stable")
    grouped = visits.groupby("inspector_id", sort=True)
    first, last = grouped.first(), grouped.last()
    return pd.DataFrame({
        "inspector_id": pd.Series(first.index, dtype="str"),
        "name": pd.Series(pd.NA, index=range(len(first)), dtype="str"),
        "department": last["department"].astype("str").to_numpy(),
        "active_from": first["inspected_on"].to_numpy(),
        "active_to": pd.Series(pd.NaT, index=range(len(first)), dtype="datetime64[ns]"),
        "certified": pd.Series(pd.NA, index=range(len(first)), dtype="boolean"),
    })


def stored_roster(conn: sa.Connection) -> pd.DataFrame:
    """The roster stored in the database of ``conn`` (``inspector_id``, ``name``, ``department``)."""
    rows = conn.execute(sa.text("SELECT inspector_id, name, department FROM inspectors")).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["inspector_id", "name", "department"], dtype=object)
