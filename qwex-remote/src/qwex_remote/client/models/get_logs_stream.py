from enum import StrEnum

class GetLogsStream(StrEnum):
    INDEX = "index"
    STDERR = "stderr"
    STDOUT = "stdout"

    def __str__(self) -> str:
        return str(self.value)
