"""The README's quick start runs as written (from a folder that has ../shared beside it)."""

from __future__ import annotations

import re
import runpy

from conftest import REPO_ROOT, SHARED_DATA


def _block(name: str) -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = re.search(rf"<!-- {name} -->(.*?)<!-- /{name} -->", text, re.S)
    assert section, f"README.md has no {name} section"
    code = re.search(r"```python\n(.*?)```", section.group(1), re.S)
    assert code, f"README.md's {name} section has no python block"
    return code.group(1)


def _run_block(name: str, tmp_path, monkeypatch) -> tuple[dict, object]:
    """Run the README's ``name`` block as a script in a project folder with ../shared beside it."""
    work = tmp_path / "project"
    work.mkdir()
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    script = work / f"{name.lower()}.py"
    script.write_text(_block(name))
    monkeypatch.chdir(work)
    return runpy.run_path(str(script), run_name="__main__"), work


def test_quickstart_runs(tmp_path, monkeypatch):
    namespace, work = _run_block("QUICKSTART", tmp_path, monkeypatch)
    assert [tuple(m.shape) for m in namespace["maps"]] == [(1, 32, 32), (1, 16, 16), (1, 8, 8)]
    torch_probs = namespace["probs"]
    assert abs(float(torch_probs.sum()) - 1) < 1e-5
    picture = work / "attention.png"
    assert picture.is_file() and picture.stat().st_size > 1000


def test_transformers_quickstart_runs(tmp_path, monkeypatch, capsys):
    namespace, _ = _run_block("TRANSFORMERS", tmp_path, monkeypatch)
    labels = namespace["classify"].model.config.label2id
    printed = capsys.readouterr().out
    assert "'label'" in printed and any(f"'{name}'" in printed for name in labels)
