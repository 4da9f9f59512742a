"""The README's GitHub Actions and GitLab CI gate jobs, run as a CI runner would: their `rai-pipelines`
steps, exactly as the README writes them, in a temporary GitOps repository, with the package installed from a wheel
built from this checkout (so that nothing resolves against the checkout: the defaults `./policies`
and `./models` must come from the working directory)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from rai_pipelines.core.registry import load_registry
from rai_pipelines.demo.world import _base_files, overlay_files
from rai_pipelines.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
COMPLIANT = {"1.4.2": {"fairness_applicable": False, "estimated_cost_per_inference_usd": 0.0013, "drift_share": 0.0}}
OVER_BUDGET = {"2.0.0": {"fairness_applicable": False, "estimated_cost_per_inference_usd": 0.0081, "drift_share": 0.0}}


def github_actions_steps() -> list[str]:
    """The `run:` steps of the README's workflow that call rai-pipelines (the pip installs are what
    the fixture below does from the wheel)."""
    text = README.read_text()
    block = text.split("GitHub Actions (`.github/workflows/model-gate.yml`", 1)[1]
    workflow = yaml.safe_load(block.split("```yaml\n", 1)[1].split("```", 1)[0])
    steps = [step["run"] for step in workflow["jobs"]["gate"]["steps"] if "run" in step]
    assert any(s.startswith("pip install") for s in steps)
    return [s.strip() for s in steps if s.strip().startswith("rai-pipelines ")]


def gitlab_ci_steps() -> list[str]:
    """The `script:` lines of the README's GitLab CI job that call rai-pipelines."""
    block = README.read_text().split("GitLab CI (`.gitlab-ci.yml`", 1)[1]
    job = yaml.safe_load(block.split("```yaml\n", 1)[1].split("```", 1)[0])["model-gate"]
    assert job["artifacts"]["reports"]["junit"] == "gate.xml"
    assert any(s.startswith("pip install") for s in job["script"])
    return [s.strip() for s in job["script"] if s.strip().startswith("rai-pipelines ")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """The package installed from a wheel into a folder of its own; the environment a CI step gets."""
    build = tmp_path_factory.mktemp("wheel")
    sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    from gate_install import build_wheel

    wheel = build_wheel(build)
    site = build / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAI_", "PYTHON", "DAGSTER_"))}
    env["PATH"] = f"{site / 'bin'}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(site)
    where = subprocess.run(
        [sys.executable, "-c", "import rai_pipelines; print(rai_pipelines.__file__)"],
        env=env,
        cwd=build,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(site)), where  # the wheel's package, not this checkout
    return env


def gitops_repository(root: Path, version: str, facts: dict) -> Path:
    """A GitOps repository as the README's workflow expects it: its policies and model registry,
    an app's production overlay deploying `version`, and the candidate's facts."""
    shutil.copytree(PROJECT_ROOT / "policies", root / "policies")
    shutil.copytree(PROJECT_ROOT / "models", root / "models")
    spec = load_registry(PROJECT_ROOT / "models")["credit-scoring-ai"]
    app = root / "apps" / spec.name
    for folder, files in (("base", _base_files(spec)), ("overlays/production", overlay_files(spec, version))):
        (app / folder).mkdir(parents=True)
        for name, text in files.items():
            (app / folder / name).write_text(text)
    (root / "facts").mkdir()
    (root / "facts" / "candidate.json").write_text(json.dumps(facts))
    return root


def run_steps(steps: list[str], repository: Path, env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    return [
        subprocess.run(["bash", "-c", step], cwd=repository, env=env, capture_output=True, text=True, timeout=300)
        for step in steps
    ]


def test_the_readme_github_actions_job_passes_a_compliant_candidate(installed, tmp_path):
    steps = github_actions_steps()
    assert [s.split()[1] for s in steps] == ["policy", "gate"]
    repository = gitops_repository(tmp_path / "gitops", "1.4.2", COMPLIANT)
    policy_test, gate = run_steps(steps, repository, installed)
    assert policy_test.returncode == 0, policy_test.stdout + policy_test.stderr
    assert "PASS: " in policy_test.stdout
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "1 passed, 0 failed" in gate.stdout
    suite = ET.parse(repository / "gate.xml").getroot()
    assert suite.get("failures") == "0"
    sarif = json.loads((repository / "gate.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"] == []
    assert not (repository / ".rai").exists()  # --no-decision-log: nothing written in the checkout


def test_the_readme_github_actions_job_fails_an_over_budget_candidate(installed, tmp_path):
    repository = gitops_repository(tmp_path / "gitops", "2.0.0", OVER_BUDGET)
    _, gate = run_steps(github_actions_steps(), repository, installed)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "Estimated inference cost exceeds budget (0.005 USD)." in gate.stdout
    results = json.loads((repository / "gate.sarif").read_text())["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["cost"]


def test_without_a_registry_in_the_working_directory_the_gate_says_where_it_looked(installed, tmp_path):
    repository = gitops_repository(tmp_path / "gitops", "1.4.2", COMPLIANT)
    shutil.rmtree(repository / "models")
    (_, gate) = run_steps(github_actions_steps(), repository, installed)
    assert gate.returncode == 2
    assert str(repository / "models") in gate.stdout + gate.stderr


def test_the_readme_gitlab_ci_job_passes_a_compliant_candidate_and_fails_an_over_budget_one(installed, tmp_path):
    steps = gitlab_ci_steps()
    assert [s.split()[1] for s in steps] == ["policy", "gate"]
    compliant = run_steps(steps, gitops_repository(tmp_path / "ok", "1.4.2", COMPLIANT), installed)
    assert [done.returncode for done in compliant] == [0, 0], [d.stdout + d.stderr for d in compliant]
    assert ET.parse(tmp_path / "ok" / "gate.xml").getroot().get("failures") == "0"
    over = run_steps(steps, gitops_repository(tmp_path / "over", "2.0.0", OVER_BUDGET), installed)
    assert over[1].returncode == 1, over[1].stdout + over[1].stderr
    report = ET.parse(tmp_path / "over" / "gate.xml").getroot()
    assert report.get("failures") == "1"
    assert "Estimated inference cost exceeds budget (0.005 USD)." in ET.tostring(report, encoding="unicode")


PIPELINES_ONLY = (
    "dagster",
    "pyarrow",
    "pandas",
    "numpy",
    "duckdb",
    "scipy",
    "sklearn",
    "great_expectations",
    "alibi_detect",
    "boto3",
    "google",
    "azure",
    "regopy",
    "matplotlib",
    "sqlalchemy",
)
BLOCKER = f"""
import sys


class _NotInstalled:
    # The base install: the pipelines extra's packages are absent.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {PIPELINES_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: base install)", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture(scope="module")
def base_install(installed, tmp_path_factory) -> dict[str, str]:
    """The installed package as the base install leaves it: none of the pipelines extra's packages."""
    blocker = tmp_path_factory.mktemp("base-install")
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {**installed, "PYTHONPATH": f"{blocker}{os.pathsep}{installed['PYTHONPATH']}"}
    probe = subprocess.run([sys.executable, "-c", "import pyarrow"], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "blocked: base install" in probe.stderr
    return env


def test_the_readme_ci_job_runs_on_the_base_install_without_the_pipelines(base_install, tmp_path):
    repository = gitops_repository(tmp_path / "gitops", "1.4.2", COMPLIANT)
    policy_test, gate = run_steps(github_actions_steps(), repository, base_install)
    assert policy_test.returncode == 0, policy_test.stdout + policy_test.stderr
    assert gate.returncode == 0, gate.stdout + gate.stderr
    demo = run_steps(["rai-pipelines demo --home demo"], repository, base_install)[0]
    assert demo.returncode == 2
    assert "pip install 'rai-pipelines[pipelines]'" in demo.stderr and "missing dagster" in demo.stderr
