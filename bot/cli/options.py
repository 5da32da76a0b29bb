"""Options computed when a command is used, not when its module is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["LateOptions"]


class LateOptions(click.Command):
    """A command some of whose options are made on first use: a flag for each option an integration declares
    (`--send-updates`, `--summary-pattern`...). Reading those imports every integration (~300 modules, 0.2 s of
    CPU), which the other commands of the same module (`connection list`, `sync status`) do not need.

    `late` makes the options; `after` is how many of the declared parameters follow them, so that they keep their
    place in `--help`.
    """

    def __init__(self, *args: Any, late: Callable[[], list[click.Parameter]], after: int = 0, **kwargs: Any) -> None:
        self._late: Callable[[], list[click.Parameter]] | None = late
        self._after = after
        self._declared: list[click.Parameter] = []
        super().__init__(*args, **kwargs)

    @property
    def params(self) -> list[click.Parameter]:
        if self._late is not None:
            late, self._late = self._late, None
            at = len(self._declared) - self._after
            self._declared[at:at] = late()
        return self._declared

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._declared = value
