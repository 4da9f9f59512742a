"""Documentation that cannot rot: the README's "Add a model" commands run as written, and its table
of model-file keys names every key the registry's schema has (and no other)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from rai_pipelines.core.registry import _ModelDoc
from rai_pipelines.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
SECTION = README.split("\n## Add a model", 1)[1].split("\n### Try it on the demo", 1)[0]


def _schema_keys(model: type, prefix: str = "") -> set[str]:
    keys = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        nested = [a for a in getattr(kind, "__args__", ()) if isinstance(a, type)] + [kind]
        doc = next((k for k in nested if isinstance(k, type) and hasattr(k, "model_fields")), None)
        if name == "versions":
            keys |= {f"versions.<version>.{k}" for k in _version_keys()}
        elif doc is not None:
            keys |= _schema_keys(doc, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def _version_keys() -> set[str]:
    from rai_pipelines.core.registry import _ServingDoc, _VersionDoc

    keys = {k for k in _VersionDoc.model_fields if k != "serving"}
    return keys | {f"serving.{k}" for k in _ServingDoc.model_fields}


def _table_keys() -> set[str]:
    keys = set()
    for row in re.findall(r"^\| (`.+?) \| (?:yes|no)", SECTION, re.M):
        names = re.findall(r"`([^`]+)`", row)
        base = ""
        for name in names:
            if name.startswith("."):  # `versions.<version>.serving.instance_type`, `.replicas`: same parent
                keys.add(base + name[1:])
            else:
                keys.add(name)
                base = name.rsplit(".", 1)[0] + "." if "." in name else ""
    return keys


def test_the_model_key_table_names_every_key_of_the_schema():
    assert _table_keys() == _schema_keys(_ModelDoc)


def test_the_add_a_model_commands_run_as_written(tmp_path):
    (block,) = re.findall(r"```sh\n(.*?)```", SECTION, re.S)
    shutil.copytree(PROJECT_ROOT / "models", tmp_path / "models")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-ec", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK    fraud-scoring-ai (models/fraud-scoring-ai.yaml): 1 version(s), 6 feature(s)" in done.stdout
    assert "3 valid, 0 invalid model file(s) in models" in done.stdout
    validate = block.strip().splitlines()[-1]
    path = tmp_path / "models" / "fraud-scoring-ai.yaml"
    written = path.read_text()
    # a misspelt value in the new file is named, and the command fails
    path.write_text(written + "drift: {correction: bonferoni}\n")
    done = subprocess.run(["bash", "-ec", validate], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "ERROR " in done.stdout and "fraud-scoring-ai.yaml: drift.correction" in done.stdout
    # so is a version another model already has: the policies look facts up by version alone
    path.write_text(written.replace('"1.0.0"', '"1.4.2"'))
    done = subprocess.run(["bash", "-ec", validate], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "'1.4.2' is also a version of credit-scoring-ai" in done.stdout
    assert "2 valid, 1 invalid model file(s) in models" in done.stdout
