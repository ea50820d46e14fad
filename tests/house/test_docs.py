"""Docs that cannot go stale: the reference pages are what the code makes of itself, every key
has a description and a place in the example config, every figure's results file exists, and
the example configs pass the same models the daemon uses."""

from __future__ import annotations

import re
import subprocess
import sys
import typing

from pydantic import BaseModel

from edgeswin.config import CameraConfig, DeviceConfig, load_config
from tests.harness import REPO

DOC_FILES = [REPO / "README.md", REPO / "SECURITY.md", REPO / "models" / "README.md",
             REPO / "benchmarks" / "RESULTS.md",
             *sorted(p for p in (REPO / "docs").rglob("*.md"))]


def _fields(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}", name, field
        subs = {field.annotation, *typing.get_args(field.annotation)}
        subs |= {inner for arg in list(subs) for inner in typing.get_args(arg)}
        for sub in subs:
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                yield from _fields(sub, f"{prefix}{name}.")


def test_the_generated_pages_are_what_the_code_makes_now():
    run = subprocess.run([sys.executable, str(REPO / "docs" / "gen_reference.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_config_key_has_a_description():
    missing = [key for model in (DeviceConfig, CameraConfig)
               for key, _, field in _fields(model) if not (field.description or "").strip()]
    assert not missing, f"keys without Field(description=...): {missing}"


def test_the_example_config_shows_every_key_and_passes_the_models():
    example = REPO / "configs" / "example"
    device_text = (example / "edgeswin.yaml").read_text()
    camera_text = "\n".join(p.read_text() for p in (example / "cameras").glob("*.yaml"))
    absent = [key for key, name, _ in _fields(DeviceConfig)
              if not re.search(rf"\b{name}:", device_text)]
    absent += [f"cameras: {key}" for key, name, _ in _fields(CameraConfig)
               if not re.search(rf"\b{name}:", camera_text)]
    assert not absent, f"configs/example never shows: {absent}"
    config = load_config(example)
    assert config.cameras and config.device.engines
    # every commented-out camera file still passes once enabled
    for entry in config.cameras:
        assert entry.config.name == entry.file.stem or "name:" in entry.file.read_text()


def test_every_results_file_a_document_names_exists():
    named = set()
    for doc in DOC_FILES:
        text = doc.read_text()
        named |= set(re.findall(r"benchmarks/results/[\w.\-]+\w", text))
        named |= set(re.findall(r"models/(?:results|train-logs)/[\w.\-*]+\w", text))
        if doc.parent.name in ("benchmarks", "models"):  # their own results/, relative
            named |= {f"{doc.parent.name}/{m}" for m in re.findall(
                r"(?<![\w/])(?:results|train-logs)/[\w.\-]+\w", text)}
    assert named, "the documents name their results files"
    missing = sorted(n for n in named if not any(p.is_file() for p in REPO.glob(n)))
    assert not missing, missing


def test_the_readme_stays_short_and_links_only_to_pages_that_exist():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 260
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


def test_the_results_tables_are_what_their_results_files_say():
    """Each marked table of RESULTS.md is made again from its results file; an edited figure
    is found."""
    from benchmarks import report
    done = subprocess.run([sys.executable, "-m", "benchmarks.report", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (REPO / "benchmarks" / "RESULTS.md").read_text()
    table = report.throughput()
    cell = table.splitlines()[2].split(" | ")[1]
    tampered = text.replace(table, table.replace(cell, cell + "9", 1))
    assert tampered != text and report.refreshed(tampered)[1] == ["throughput"]
