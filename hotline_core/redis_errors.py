"""The call path's Redis client's errors.

Apart from hotline_core.redispipe because that module is compiled (see setup.py) and a compiled
class cannot derive from ConnectionError; an exception class costs nothing on the call path.
"""

from __future__ import annotations


class PipeError(ConnectionError):
    """The connection to Redis failed or was lost."""


class ReplyError(Exception):
    """Redis answered a command with an error."""
