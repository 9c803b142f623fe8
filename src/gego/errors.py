"""User-facing errors. The CLI prints these as one line (no traceback) and exits with 2."""


class GegoError(Exception):
    """Bad input or configuration: the message names the file, field or parameter at fault."""


class DataFormatError(GegoError, ValueError):
    """A data file does not have the expected layout; the message names the file and line."""


class ConfigError(GegoError, ValueError):
    """A configuration value or command-line option is invalid."""
