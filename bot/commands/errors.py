"""The command layer's one error: bad input, with what was wrong and an example of the right way."""

from __future__ import annotations

__all__ = ["EXAMPLE_REF", "ParseError"]

#: The appointment id examples show until the person has typed one of their own.
EXAMPLE_REF = "A-1042"


class ParseError(ValueError):
    """Malformed command, time or card action. Raised before anything changes."""

    def __init__(self, message: str, example: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.example = example

    def __str__(self) -> str:
        return f"{self.message} (e.g. `{self.example}`)" if self.example else self.message

    def about(self, appointment_id: int) -> ParseError:
        """The same error with the example naming the appointment the person typed."""
        return ParseError(self.message, self.example.replace(EXAMPLE_REF, f"A-{appointment_id}"))
