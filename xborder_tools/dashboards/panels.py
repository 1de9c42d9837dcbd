"""What both dashboards share: the data source, queries, the platform selector, panel kinds.

Every query names the Prometheus data source by the fixed uid of
deploy/grafana/provisioning/datasources/prometheus.yml.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import bargauge, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_models
from grafana_foundation_sdk.models import prometheus as prom_models

__all__ = [
    "DATASOURCE",
    "HOME",
    "PLATFORM",
    "PanelBuilder",
    "bars",
    "framed",
    "grown",
    "label_stat",
    "new_dashboard",
    "pie",
    "platform_variable",
    "query",
    "rule_pack_panel",
    "stat_panel",
    "table_panel",
    "timeseries_panel",
]

DATASOURCE: Final = dash_models.DataSourceRef(type_val="prometheus", uid="prometheus")
# The contract's home region (rules/pack.yaml): transfers "leave" from here.
HOME: Final = "KR"
# The platform selector's value in queries: a regex of the selected platforms.
PLATFORM: Final = 'platform=~"$platform"'

PanelBuilder = Builder[dash_models.Panel]


def grown(selector: str, window: str = "$__range") -> str:
    """How much a counter grew over `window` (the time range), series born in it included.

    `increase` needs two samples of a series, so the count a labelled
    counter is born with (an alert group's first alert is 1, not 0) would be
    lost; a series that did not exist at the window's start counts whole.
    """
    return f"(({selector} unless {selector} offset {window}) or increase({selector}[{window}]))"


def query(
    expr: str, legend: str = "", *, instant: bool = False, table: bool = False, ref: str = "A"
) -> prom.Dataquery:
    """A query of the data source; `instant` at the range's end, `table` as rows of labels."""
    q = prom.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    q = q.instant() if instant else q.range()
    if table:
        q = q.format(prom_models.PromQueryFormat.TABLE)
    return q


def platform_variable() -> dash.QueryVariable:
    """`$platform`: the platforms the disclosures file names, and `other`; all by default."""
    return (
        dash.QueryVariable("platform")
        .label("Platform")
        .description("Platforms named in the disclosures file; any other is counted as other")
        .datasource(DATASOURCE)
        .query("label_values(xborder_personal_records_total, platform)")
        .refresh(dash_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dash_models.VariableOption(selected=True, text="All", value="$__all"))
    )


def new_dashboard(title: str, uid: str, description: str, tags: list[str]) -> dash.Dashboard:
    """A dashboard as both are: read-only (provisioned from files), Grafana's own annotations."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(tags)
        .readonly()
        .timezone("browser")
        .tooltip(dash_models.DashboardCursorSync.CROSSHAIR)
        .annotation(
            dash.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(dash_models.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
    )


class _Framed(Protocol):
    """What every panel builder of the SDK has (each is a class of its own)."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: dash_models.DataSourceRef) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def grid_pos(self, grid_pos: dash_models.GridPos) -> Self: ...


P = TypeVar("P", bound=_Framed)


def framed(panel: P, title: str, description: str, unit: str, w: int, h: int) -> P:
    """A panel's title, description, unit and size, on the Prometheus data source.

    Placed at 0,0: the dashboard lays panels out in order, left to right.
    """
    grid = dash_models.GridPos(h=h, w=w, x=0, y=0)
    return (
        panel.title(title).description(description).datasource(DATASOURCE).unit(unit).grid_pos(grid)
    )


def label_stat(title: str, description: str, info: str, label: str, *, w: int = 4) -> stat.Panel:
    """The value of an info metric's label (a version, a build date), as text."""
    q = query(f"count by ({label}) ({info})", "{{" + label + "}}", instant=True)
    return stat_panel(title, description, q, "none", w=w).text_mode(common.BigValueTextMode.NAME)


def rule_pack_panel() -> stat.Panel:
    return label_stat(
        "Rule pack",
        "The rule pack version the workers evaluate (`xborder rules check` prints it).",
        "xborder_rules_info",
        "version",
    )


def timeseries_panel(
    title: str,
    description: str,
    queries: Sequence[prom.Dataquery],
    unit: str,
    *,
    w: int = 12,
    h: int = 8,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        framed(timeseries.Panel(), title, description, unit, w, h)
        .fill_opacity(20 if stacked else 0)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    for q in queries:
        panel = panel.with_target(q)
    return panel


def _last() -> common_builders.ReduceDataOptions:
    """One value per series, its last: an instant query has only that."""
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(
    title: str, description: str, q: prom.Dataquery, unit: str, *, w: int = 6, h: int = 4
) -> stat.Panel:
    return (
        framed(stat.Panel(), title, description, unit, w, h)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(_last())
        .with_target(q)
    )


def table_panel(
    title: str,
    description: str,
    q: prom.Dataquery,
    unit: str,
    *,
    w: int = 12,
    h: int = 8,
) -> table.Panel:
    """A table of an instant query (its time column hidden), sorted largest first."""
    return (
        framed(table.Panel(), title, description, unit, w, h)
        .with_target(q)
        .with_transformation(
            dash_models.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}},
            )
        )
        .sort_by([common_builders.TableSortByFieldState().display_name("Value").desc(True)])
    )


def bars(
    title: str, description: str, q: prom.Dataquery, unit: str, *, w: int = 12, h: int = 8
) -> bargauge.Panel:
    """Horizontal bars, one per series of an instant query."""
    return (
        framed(bargauge.Panel(), title, description, unit, w, h)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(_last())
        .with_target(q)
    )


def pie(
    title: str, description: str, q: prom.Dataquery, unit: str, *, w: int = 6, h: int = 8
) -> piechart.Panel:
    return (
        framed(piechart.Panel(), title, description, unit, w, h)
        .reduce_options(_last())
        .with_target(q)
    )
