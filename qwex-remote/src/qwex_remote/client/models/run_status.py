from enum import StrEnum

class RunStatus(StrEnum):
    CANCELLED = "cancelled"
    FAILED = "failed"
    LOST = "lost"
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"

    def __str__(self) -> str:
        return str(self.value)
