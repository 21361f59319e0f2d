"""The README's two commands: the demo's, run as written in a fresh copy of the
repository (a new venv, the package from source, the demo's table printed), and the
tests', which is what CI runs."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

ROOT = pathlib.Path(__file__).parent.parent


def readme_command(comment: str) -> str:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## The two commands") :]
    (line,) = [line for line in block.splitlines() if line.rstrip().endswith(f"# {comment}")]
    return re.sub(r"\s+#[^#]*$", "", line).strip()


def test_the_demo_command_works_from_a_fresh_copy(tmp_path: pathlib.Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    copy = tmp_path / "clone"
    for name in files:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    command = readme_command("run the demo")
    assert "aiohttp-pool-otel demo" in command
    done = subprocess.run(
        ["bash", "-c", command], cwd=copy, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "small: eof/headers -> pooled" in done.stdout
    assert "went 4, 3, 2" in done.stdout


def test_the_test_command_is_what_ci_runs() -> None:
    command = readme_command("run the tests")
    assert command == "./run-tests.sh"
    assert command in (ROOT / ".ci/run").read_text()
