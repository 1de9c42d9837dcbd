"""The supervisors' dashboard: how much personal data leaves for which country, from which
platform, under which legal ground, and what changed."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import geomap as geomap_models

from xborder_tools.dashboards.panels import (
    HOME,
    PLATFORM,
    PanelBuilder,
    bars,
    framed,
    grown,
    new_dashboard,
    pie,
    platform_variable,
    query,
    rule_pack_panel,
    stat_panel,
    table_panel,
    timeseries_panel,
)

__all__ = ["UID", "transfers_dashboard"]

UID = "xborder-transfers"

RECORDS = "xborder_personal_records_total"


def leaving(metric: str = RECORDS, *matchers: str) -> str:
    """Personal data of the home region sent from it to anywhere else, of the selected platforms.

    `unresolved` is included: a destination nothing could place is not at home.
    """
    return (
        f'{metric}{{src_country="{HOME}", dst_country!="{HOME}", '
        + ", ".join((*matchers, PLATFORM))
        + "}"
    )


LEAVING = leaving()
NO_BASIS = 'legal_basis=~"none|absent"'
PER_SECOND = "suffix: records/s"


def _where() -> list[PanelBuilder]:
    return [
        stat_panel(
            f"Personal records leaving {HOME}",
            f"Records of {HOME} subjects' personal data sent abroad (the telemetry's `records` "
            "field) over the time range.",
            query(f"sum({grown(LEAVING)}) or vector(0)", instant=True),
            "short",
        ),
        stat_panel(
            "Destination countries",
            "Countries (and `unresolved`) that received personal records over the time range.",
            query(f"count(sum by (dst_country) ({grown(LEAVING)}) > 0) or vector(0)", instant=True),
            "short",
        ),
        stat_panel(
            "Records without a legal basis",
            "Personal records sent by API calls that stated legal_basis `none` or none at all.",
            query(
                f"sum({grown(leaving(RECORDS, NO_BASIS))}) or vector(0)",
                instant=True,
            ),
            "short",
        ),
        stat_panel(
            "Bytes of personal data leaving",
            "Bytes of egress flows carrying personal data abroad.",
            query(
                f"sum({grown(leaving('xborder_personal_transfer_bytes_total'))}) or vector(0)",
                instant=True,
            ),
            "bytes",
        ),
        framed(
            geomap.Panel(),
            "Personal records by destination country",
            f"Personal records sent from {HOME} over the time range, placed by the destination's "
            "ISO 3166-1 code (`unresolved` has no place on the map; see the table).",
            "short",
            16,
            12,
        )
        .with_target(
            query(f"sum by (dst_country) ({grown(LEAVING)})", instant=True, table=True),
        )
        # Centred between Korea and the destinations that matter most to it.
        .view(geomap.MapViewConfig().id("coords").lat(30).lon(100).zoom(2))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(False))
        .basemap(common_builders.MapLayerOptions().type("default").name("Basemap"))
        .layers(
            [
                common_builders.MapLayerOptions()
                .type("markers")
                .name("Personal records")
                .location(
                    common_builders.FrameGeometrySource()
                    .mode(common.FrameGeometrySourceMode.LOOKUP)
                    .lookup("dst_country")
                    .gazetteer("public/gazetteer/countries.json")
                )
                .config(
                    {
                        "showLegend": True,
                        "style": {
                            "color": {"field": "Value", "fixed": "red"},
                            "size": {"field": "Value", "fixed": 5, "min": 4, "max": 30},
                            "text": {"field": "dst_country", "mode": "field"},
                            "textConfig": {"fontSize": 10, "offsetY": -14},
                        },
                    }
                )
                .tooltip(True)
            ]
        )
        .tooltip(geomap.TooltipOptions().mode(geomap_models.TooltipMode.DETAILS)),
        table_panel(
            "Destinations",
            "The map's figures, largest first.",
            query(f"sum by (dst_country) ({grown(LEAVING)})", instant=True, table=True),
            "short",
            w=8,
            h=12,
        ),
    ]


def _over_time() -> list[PanelBuilder]:
    return [
        timeseries_panel(
            f"{HOME} → CN, by platform",
            f"Personal records sent from {HOME} to China (PIPC's inquiries into storage and "
            "transfers to China), per second.",
            [
                query(
                    f'sum by (platform) (rate({RECORDS}{{src_country="{HOME}", dst_country="CN", '
                    f"{PLATFORM}}}[$__rate_interval]))",
                    "{{platform}}",
                )
            ],
            PER_SECOND,
        ),
        timeseries_panel(
            f"Personal records leaving {HOME}, by destination",
            "Per second, stacked by destination country.",
            [query(f"sum by (dst_country) (rate({LEAVING}[$__rate_interval]))", "{{dst_country}}")],
            PER_SECOND,
            stacked=True,
        ),
        timeseries_panel(
            "Onward transfers, by third country",
            f"Personal records of {HOME} subjects sent on from a country outside {HOME} "
            "(first hop S → third country T), per second; the onward-transfer rule "
            "(pipa.xborder.onward_transfer) ties them to their first hop.",
            [
                query(
                    f'sum by (src_country, dst_country) (rate({RECORDS}{{src_country!~"{HOME}'
                    f'|unresolved", dst_country!="{HOME}", {PLATFORM}}}[$__rate_interval]))',
                    "{{src_country}} → {{dst_country}}",
                )
            ],
            PER_SECOND,
        ),
        timeseries_panel(
            "Legal basis over time",
            "Personal records leaving, per second, by the legal basis the API call stated "
            "(`absent`: none stated; `not_applicable`: egress telemetry, which has no such field).",
            [query(f"sum by (legal_basis) (rate({LEAVING}[$__rate_interval]))", "{{legal_basis}}")],
            PER_SECOND,
            stacked=True,
        ),
    ]


def _grounds() -> list[PanelBuilder]:
    return [
        pie(
            "Legal basis",
            "Personal records leaving over the time range, by stated legal basis.",
            query(f"sum by (legal_basis) ({grown(LEAVING)})", "{{legal_basis}}", instant=True),
            "short",
            w=8,
        ),
        bars(
            "Data categories leaving",
            "Transfers (telemetry records) carrying each personal data category, cut to the "
            "taxonomy's second level (user.contact, user.financial, ...).",
            query(
                f"sum by (category) ({grown(leaving('xborder_personal_transfers_total'))})",
                "{{category}}",
                instant=True,
            ),
            "short",
            w=8,
        ),
        bars(
            "By platform",
            "Personal records leaving over the time range, per platform (`other`: platforms the "
            "disclosures file does not name).",
            query(f"sum by (platform) ({grown(LEAVING)})", "{{platform}}", instant=True),
            "short",
            w=8,
        ),
    ]


ALERTS = f'xborder_alerts_total{{action="new", {PLATFORM}}}'


def _findings() -> list[PanelBuilder]:
    undisclosed = (
        f'xborder_alerts_total{{rule_id="pipa.xborder.undisclosed_destination", action="new", '
        f"{PLATFORM}}}"
    )
    return [
        table_panel(
            "Alerts by rule and severity",
            "Alert groups opened over the time range (one per rule, platform, route and day).",
            query(f"sum by (rule_id, severity) ({grown(ALERTS)})", instant=True, table=True),
            "short",
        ),
        table_panel(
            "Top undisclosed destinations",
            "Countries platforms sent personal data to without disclosing them "
            "(PIPA Art. 28-8(2)), by alert groups opened over the time range.",
            query(
                f"topk(10, sum by (platform, dst_country) ({grown(undisclosed)}))",
                instant=True,
                table=True,
            ),
            "short",
        ),
        timeseries_panel(
            "New alerts by severity",
            "Alert groups opened per interval.",
            [
                query(
                    f"sum by (severity) ({grown(ALERTS, '$__interval')})",
                    "{{severity}}",
                )
            ],
            "short",
            w=24,
            stacked=True,
        ),
    ]


def _changes() -> list[PanelBuilder]:
    by_route = f"sum by (platform, dst_country) ({grown(LEAVING)})"
    week_before = f"sum by (platform, dst_country) (max_over_time({LEAVING}[1w] offset $__range))"
    now = f"sum by (dst_country) (rate({LEAVING}[$__rate_interval]))"
    before = f"sum by (dst_country) (rate({LEAVING}[$__rate_interval] offset 1w))"
    return [
        table_panel(
            "New destinations",
            "Platform and destination pairs that carried personal records in the time range "
            "and none in the week before it.",
            query(
                f"{by_route} unless on (platform, dst_country) {week_before}",
                instant=True,
                table=True,
            ),
            "short",
            w=10,
        ),
        timeseries_panel(
            "Change against a week earlier, by destination",
            "Records per second now minus the same time a week earlier (all of it for "
            "destinations that had none then).",
            [query(f"({now} - {before}) or {now}", "{{dst_country}}")],
            PER_SECOND,
            w=10,
        ),
        rule_pack_panel(),
    ]


def transfers_dashboard() -> dash.Dashboard:
    board = (
        new_dashboard(
            "Cross-border transfers",
            UID,
            "Personal data leaving for other countries: where to, from which platform, under "
            "which legal ground, what the rules found and what changed. Generated by "
            "`xborder dashboards generate`; metrics in docs/metrics.md.",
            ["xborder", "compliance"],
        )
        .time("now-24h", "now")
        .refresh("1m")
        .with_variable(platform_variable())
    )
    sections: list[tuple[str, list[PanelBuilder]]] = [
        ("Where personal data goes", _where()),
        ("Over time", _over_time()),
        ("Legal grounds and data", _grounds()),
        ("Findings", _findings()),
        ("What changed", _changes()),
    ]
    for title, panels in sections:
        board = board.with_row(dash.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board
