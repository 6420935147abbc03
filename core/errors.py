"""The one application error type. Services raise it; interfaces map it to a clean response."""


class ApplicationError(Exception):
    def __init__(self, message: str, *, code: str = "error", status: int = 400, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra or {}

    def as_dict(self) -> dict:
        return {"error": {"code": self.code, "message": str(self.message), **self.extra}}
