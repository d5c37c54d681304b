"""风险清单 Ranked list: every filter of ``riskgrade rank``, search, "changed", "has an override", sortable columns,
server-side pages, and the current filter exported to CSV / xlsx (the files ``riskgrade rank`` writes).

Filters travel as GET parameters (``tier``, ``township``, ``sector``, ``q``, ``changed``, ``override``, ``sort``,
``desc``, ``page``), so a filtered view is a link a planner can bookmark or send. A value that cannot be used is
refused with a message on the page (status 400); nothing typed is ever reflected unescaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from features.contract import SECTOR_BY_CODE, SECTORS
from features.errors import DataError
from scoring.domain.tiers import TIERS
from scoring.results.ranking import (
    OVERRIDE_KINDS,
    ListFilter,
    export_frame,
    list_page,
    ranked_list,
    resolve_run,
    run_townships,
)
from scoring.web.auth import Account, require
from scoring.web.downloads import csv_download, enterprise_href, xlsx_download
from scoring.web.pages import engine, render, settings

router = APIRouter()

PAGE_SIZE = 50

#: Column headers of the list: (sort key or None, 中文, English).
COLUMNS: tuple[tuple[str | None, str, str], ...] = (
    ("rank", "排名", "rank"),
    (None, "企业", "enterprise"),
    ("name", "名称", "name"),
    ("township", "乡镇", "township"),
    ("sector", "行业", "sector"),
    ("probability", "风险概率", "probability"),
    ("points", "分值", "points"),
    (None, "等级", "tier"),
    (None, "调整", "override"),
    ("visits", "已检查/上限", "visits/cap"),
    (None, "下次可检查", "next visit"),
)

#: How an override code reads on the page.
CODE_LABELS = {"manual": "人工调整 manual", "hold": "降级保留 hysteresis hold",
               "manual_ignored": "人工调整未生效 manual override not applied (veto)"}


@dataclass(frozen=True)
class ListRequest:
    """The GET parameters of the list, as typed (trimmed), and what they mean."""

    tier: str = ""
    township: str = ""
    sector: str = ""
    q: str = ""
    changed: bool = False
    override: str = ""
    sort: str = "rank"
    desc: bool = False
    page: int = 1

    @classmethod
    def from_query(cls, request: Request) -> tuple[ListRequest, str | None]:
        """The parameters, and the reason a page number was refused (then page 1)."""
        query = request.query_params
        text = {name: (query.get(name) or "").strip() for name in ("tier", "township", "sector", "q", "override",
                                                                    "sort", "page")}
        problem = None
        page = 1
        if text["page"]:
            if text["page"].isdigit() and 0 < int(text["page"]) < 10**9:
                page = int(text["page"])
            else:
                problem = "页码应为正整数 · the page must be a whole number from 1"
        return cls(tier=text["tier"], township=text["township"], sector=text["sector"], q=text["q"],
                   changed=query.get("changed") in ("1", "on", "true"), override=text["override"],
                   sort=text["sort"] or "rank", desc=query.get("desc") in ("1", "on", "true"), page=page), problem

    def filters(self) -> ListFilter:
        return ListFilter(tier=self.tier or None, township=self.township or None, sector=self.sector or None,
                          search=self.q or None, changed=self.changed, override=self.override or None)

    def params(self, **changes) -> dict[str, str]:
        values = {"tier": self.tier, "township": self.township, "sector": self.sector, "q": self.q,
                  "changed": "1" if self.changed else "", "override": self.override,
                  "sort": "" if self.sort == "rank" else self.sort, "desc": "1" if self.desc else "",
                  "page": "" if self.page == 1 else str(self.page)}
        values.update({k: ("" if v is None else str(v)) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}

    def link(self, path: str = "/list", **changes) -> str:
        params = self.params(**changes)
        return path + ("?" + urlencode(params) if params else "")

    def sort_link(self, key: str) -> str:
        """The header link: sort by ``key`` (again: the other direction), back to page 1."""
        descending = not self.desc if self.sort == key else False
        return self.link(sort=key, desc="1" if descending else "", page="")


def _today(request: Request):
    return settings(request).now().date()


def _options(db, account: Account, today, run: dict | None) -> dict:
    """The run shown and the townships of its drop-down (``run``: the page's run, when the page was read)."""
    if run is None:
        try:
            run = resolve_run(db, today=today)
        except DataError:
            return {"townships": [], "run": None}
    return {"townships": run_townships(db, run, account.townships), "run": run}


@router.get("/list")
def ranked_list_page(request: Request, account: Account = Depends(require("viewer"))):
    db = engine(request)
    wanted, problem = ListRequest.from_query(request)
    page = None
    if problem is None:
        try:
            page = list_page(db, wanted.filters(), sort=wanted.sort, descending=wanted.desc, page=wanted.page,
                             page_size=PAGE_SIZE, townships=account.townships, today=_today(request))
        except DataError as exc:
            problem = str(exc)
    context = {
        "wanted": wanted, "page": page, "problem": problem, "columns": COLUMNS, "tiers": TIERS,
        "sectors": SECTORS, "sector_labels": {code: s.label_zh for code, s in SECTOR_BY_CODE.items()},
        "override_kinds": OVERRIDE_KINDS, "code_labels": CODE_LABELS, "enterprise_href": enterprise_href,
        **_options(db, account, _today(request), None if page is None else page.run),
    }
    return render(request, "list.html", context, status_code=400 if problem else 200)


def _export(request: Request, account: Account):
    from fastapi import HTTPException

    wanted, problem = ListRequest.from_query(request)
    filters = wanted.filters()
    try:
        run, frame = ranked_list(engine(request), tier=filters.tier, township=filters.township,
                                 sector=filters.sector, search=filters.search, changed=filters.changed,
                                 override=filters.override, sort=wanted.sort, descending=wanted.desc,
                                 townships=account.townships, today=_today(request))
    except DataError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return run, export_frame(frame)


@router.get("/list/export.csv")
def export_csv(request: Request, account: Account = Depends(require("viewer"))):
    run, frame = _export(request, account)
    return csv_download(frame, f"风险清单-ranked-list-{run['as_of']}.csv")


@router.get("/list/export.xlsx")
def export_xlsx(request: Request, account: Account = Depends(require("viewer"))):
    run, frame = _export(request, account)
    return xlsx_download({"ranked list": frame}, f"风险清单-ranked-list-{run['as_of']}.xlsx")
