"""The PromQL the deploy files ship: every Grafana panel target and template
query, every alert rule, with Grafana's variables filled in, and the parts
of an alert expression that must each return series."""

import json
import re

import yaml

from conftest import DEPLOY

# Grafana's variables, as a dashboard over the last hour would fill them.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$instance": ".*"}


def grafana_fill(expr: str) -> str:
    for name in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARS[name])
    return expr


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for each panel target and template variable."""
    dash = json.loads((DEPLOY / "grafana/dashboards/flowforest.json").read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel '{panel['title']}' {target['refId']}", grafana_fill(target["expr"])))
    for var in dash["templating"]["list"]:
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
        # label_values(SELECTOR, label) is Grafana's; its selector is the PromQL part.
        out.append((f"variable ${var['name']}", m.group(1) if m else query))
    return out


def alert_rules() -> list[tuple[str, str]]:
    rules = yaml.safe_load((DEPLOY / "prometheus/flowforest.rules.yml").read_text())
    return [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"] if "alert" in r]


_OPS = re.compile(r"\s*(==|!=|>=|<=|>|<|\band\b|\bor\b|\bunless\b)\s*")
_MODIFIER = re.compile(r"^(bool\s+)?((on|ignoring)\s*\([^)]*\)\s*)?((group_left|group_right)\s*(\([^)]*\))?\s*)?")


def operands(expr: str) -> list[str]:
    """Splits an expression at its top-level comparison and set operators;
    returns the operands that are queries (not plain numbers), so a threshold
    that is not crossed today does not hide a metric that does not exist."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == '"':
            i = expr.index('"', i + 1)
        elif depth == 0:
            m = _OPS.match(expr, i)
            if m and (m.group(1)[0].isalpha() or expr[i] in " =!<>"):
                if m.group(1) in ("==", "!=", ">=", "<=", ">", "<", "and", "or", "unless"):
                    parts.append(expr[start:i])
                    start = i = m.end()
                    continue
        i += 1
    parts.append(expr[start:])
    result = []
    for p in parts:
        p = _MODIFIER.sub("", p.strip()).strip()
        if p and not re.fullmatch(r"[\d\s.*+/()-]+", p):
            result.append(p)
    return result
