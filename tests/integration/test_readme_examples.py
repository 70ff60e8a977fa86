"""The README's Python client example runs as written against a live server."""

from __future__ import annotations

import re

from tests.stack import ROOT, Stack


def test_the_readme_python_client_example_runs(stack: Stack) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Command line and Python client", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    exec(code.replace("http://127.0.0.1:8000", stack.base_url), {"__name__": "readme"})
