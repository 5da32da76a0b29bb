"""The repository carries the licence its package metadata names."""

from __future__ import annotations

import tomllib

from tests.servers import REPO


def test_license_file_matches_the_pyproject_expression() -> None:
    expression = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert expression == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
