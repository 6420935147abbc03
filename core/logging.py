"""JSON logs carrying the message and conversation ids through web requests, tasks and sockets."""

import contextlib
import contextvars
import logging

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("kefu_log_context", default=None)


def bind(**values) -> contextvars.Token:
    return _context.set({**(_context.get() or {}), **{k: v for k, v in values.items() if v is not None}})


@contextlib.contextmanager
def bound(**values):
    token = bind(**values)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            setattr(record, key, value)
        return True
