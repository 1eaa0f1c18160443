"""deploy/prometheus/alerts.yml through Prometheus' own tool: valid, and each alert fires and resolves."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.environment import require

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    require(path is not None, "needs promtool (Debian: apt-get install prometheus)")
    return path


def run(promtool, *args):
    return subprocess.run(
        [promtool, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_the_rules_clean(promtool):
    result = run(promtool, "check", "rules", "alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass(promtool):
    result = run(promtool, "test", "rules", "alerts.test.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_resolved():
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES_DIR / "alerts.test.yml").read_text())["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]

    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert fired == alerts
    assert alerts <= quiet


def test_a_broken_expectation_fails_promtool(promtool, tmp_path):
    # The unit tests can fail: the same file expecting a different value does.
    broken = (RULES_DIR / "alerts.test.yml").read_text().replace("45m 0s ago", "44m 0s ago")
    (tmp_path / "alerts.yml").write_text((RULES_DIR / "alerts.yml").read_text())
    (tmp_path / "alerts.test.yml").write_text(broken)

    result = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "PortalCleanupNotRunning" in result.stdout + result.stderr


def test_every_alert_links_its_readme_section():
    readme = (RULES_DIR.parents[1] / "README.md").read_text().lower()
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert f"#### `{anchor}`" in readme, f"README has no section for {anchor}"
