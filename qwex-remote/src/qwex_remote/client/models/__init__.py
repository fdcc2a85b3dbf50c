""" Contains all the data models used in inputs/outputs """

from .error_detail import ErrorDetail
from .error_response import ErrorResponse
from .get_logs_stream import GetLogsStream
from .health import Health
from .job_info import JobInfo
from .job_info_spec import JobInfoSpec
from .job_page import JobPage
from .job_submission import JobSubmission
from .job_submission_env import JobSubmissionEnv
from .job_submission_labels import JobSubmissionLabels
from .job_submission_secrets import JobSubmissionSecrets
from .log_chunk import LogChunk
from .mount import Mount
from .resource_requirements import ResourceRequirements
from .run_status import RunStatus
from .snapshot_info import SnapshotInfo

__all__ = (
    "ErrorDetail",
    "ErrorResponse",
    "GetLogsStream",
    "Health",
    "JobInfo",
    "JobInfoSpec",
    "JobPage",
    "JobSubmission",
    "JobSubmissionEnv",
    "JobSubmissionLabels",
    "JobSubmissionSecrets",
    "LogChunk",
    "Mount",
    "ResourceRequirements",
    "RunStatus",
    "SnapshotInfo",
)
