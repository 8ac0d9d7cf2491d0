"""What the alerts and the dashboard query is what the services export: every series named in
deploy/prometheus/alerts.yml and deploy/grafana/moteplass.json is on some service's /metrics (or is a recording rule
of alerts.yml), after one registration has travelled to a mail."""

import json
import re
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.comments.app import create_app as comments_app
from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from tests.integration.e2e.test_registration_to_mail import address, create_event, participant

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SUFFIXES = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
            "gauge": [""], "summary": ["", "_sum", "_count", "_created"], "info": ["_info"]}
# PromQL words that are not series: functions, aggregations, operators and clauses.
PROMQL = {"sum", "max", "min", "avg", "count", "rate", "increase", "deriv", "time", "histogram_quantile", "and",
          "or", "unless", "by", "on", "without", "ignoring", "bool"}


def series_in(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)             # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)           # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)          # ranges
    expr = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    return {name for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)
            if name not in PROMQL and not re.fullmatch(r"\d.*|e\d*", name)}


def queried() -> tuple[set[str], set[str]]:
    """(series the alerts and the dashboard query, recording rules defined)"""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    recorded = {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}
    dashboard = json.loads((DEPLOY / "grafana" / "moteplass.json").read_text(encoding="utf-8"))
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return set().union(*map(series_in, exprs)), recorded


def exported(text: str) -> set[str]:
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in SUFFIXES[family.type]}


def test_the_query_parser_finds_series():
    assert series_in('sum by (service) (rate(http_requests_total{status=~"5.."}[5m])) > 0.01') == {
        "http_requests_total"}
    assert series_in("max by (q) (moteplass:age_seconds) and on (q) (x_total > 0)") == {"moteplass:age_seconds",
                                                                                       "x_total"}


async def test_alerts_and_dashboard_query_only_exported_series(start_service, settings, admin_headers, mailbox,
                                                              metrics_headers):
    bases = [await start_service(app, name) for app, name in (
        (notifications_app, "notifications"), (comments_app, "comments"), (registration_app, "registration"))]
    async with aiohttp.ClientSession(bases[-1]) as http:
        slug = await create_event(http, admin_headers, capacity=5)
        email = address()
        assert (await http.post(f"/events/{slug}/registrations", json=participant(email))).status == 201
        await mailbox.wait_for(email)
    names, samples = set(), {}
    async with aiohttp.ClientSession() as http:
        for base in bases:
            async with http.get(f"{base}/metrics", headers=metrics_headers) as resp:
                assert resp.status == 200
                text = await resp.text()
                names |= exported(text)
                samples |= {(sample.name, sample.labels.get("queue")): sample.value
                            for family in text_string_to_metric_families(text) for sample in family.samples}
    queue = settings.queue_name("notifications")
    assert samples[("bus_consumers", queue)] == 1
    assert samples[("bus_last_consumed_timestamp_seconds", queue)] > 0  # the registration's message was taken
    assert 0 <= samples[("bus_consumed_message_age_seconds", queue)] < 60
    assert samples[("bus_messages_parked_total", queue)] == 0
    series, recorded = queried()
    assert {name for name in series if ":" in name} <= recorded
    assert {name for name in series if ":" not in name} - names == set()
