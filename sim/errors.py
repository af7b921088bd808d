"""One error type for bad user input, so the CLI can turn it into exit code 2 without a traceback."""


class InputError(Exception):
    """A scenario, trace or override the user supplied is invalid.

    ``field`` is the dotted path of the offending field (``fleet.replicas``) when one applies; the CLI prints
    ``<field>: <message>`` so the user knows exactly what to fix.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message
