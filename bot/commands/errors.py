"""The command layer's one error: bad input, with what was wrong and an example of the right way.

It is defined beside the time grammar in sync.services.when (which raises it too) and re-exported here.
"""

from __future__ import annotations

from sync.services.when import EXAMPLE_REF, ParseError

__all__ = ["EXAMPLE_REF", "ParseError"]
