from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.run_status import RunStatus
from ..types import UNSET, Unset
from typing import cast
import datetime

if TYPE_CHECKING:
  from ..models.job_info_spec import JobInfoSpec





T = TypeVar("T", bound="JobInfo")



@_attrs_define
class JobInfo:
    """ 
        Attributes:
            backend (str):
            created_at (datetime.datetime):
            id (str):
            spec (JobInfoSpec):
            status (RunStatus):
            submission_id (str):
            submitter (str):
            cancel_requested (bool | Unset):  Default: False.
            exit_code (int | None | Unset):
            finished_at (datetime.datetime | None | Unset):
            reason (None | str | Unset):
            signal (None | str | Unset):
            snapshot (None | str | Unset):
            started_at (datetime.datetime | None | Unset):
     """

    backend: str
    created_at: datetime.datetime
    id: str
    spec: JobInfoSpec
    status: RunStatus
    submission_id: str
    submitter: str
    cancel_requested: bool | Unset = False
    exit_code: int | None | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    reason: None | str | Unset = UNSET
    signal: None | str | Unset = UNSET
    snapshot: None | str | Unset = UNSET
    started_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.job_info_spec import JobInfoSpec # noqa: PLC0415
        backend = self.backend

        created_at = self.created_at.isoformat()

        id = self.id

        spec = self.spec.to_dict()

        status = self.status.value

        submission_id = self.submission_id

        submitter = self.submitter

        cancel_requested = self.cancel_requested

        exit_code: int | None | Unset
        if isinstance(self.exit_code, Unset):
            exit_code = UNSET
        else:
            exit_code = self.exit_code

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        signal: None | str | Unset
        if isinstance(self.signal, Unset):
            signal = UNSET
        else:
            signal = self.signal

        snapshot: None | str | Unset
        if isinstance(self.snapshot, Unset):
            snapshot = UNSET
        else:
            snapshot = self.snapshot

        started_at: None | str | Unset
        if isinstance(self.started_at, Unset):
            started_at = UNSET
        elif isinstance(self.started_at, datetime.datetime):
            started_at = self.started_at.isoformat()
        else:
            started_at = self.started_at


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "backend": backend,
            "created_at": created_at,
            "id": id,
            "spec": spec,
            "status": status,
            "submission_id": submission_id,
            "submitter": submitter,
        })
        if cancel_requested is not UNSET:
            field_dict["cancel_requested"] = cancel_requested
        if exit_code is not UNSET:
            field_dict["exit_code"] = exit_code
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at
        if reason is not UNSET:
            field_dict["reason"] = reason
        if signal is not UNSET:
            field_dict["signal"] = signal
        if snapshot is not UNSET:
            field_dict["snapshot"] = snapshot
        if started_at is not UNSET:
            field_dict["started_at"] = started_at

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.job_info_spec import JobInfoSpec # noqa: PLC0415
        d = dict(src_dict)
        backend = d.pop("backend")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        id = d.pop("id")

        spec = JobInfoSpec.from_dict(d.pop("spec"))




        status = RunStatus(d.pop("status"))




        submission_id = d.pop("submission_id")

        submitter = d.pop("submitter")

        cancel_requested = d.pop("cancel_requested", UNSET)

        def _parse_exit_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        exit_code = _parse_exit_code(d.pop("exit_code", UNSET))


        def _parse_finished_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)



                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        finished_at = _parse_finished_at(d.pop("finished_at", UNSET))


        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))


        def _parse_signal(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        signal = _parse_signal(d.pop("signal", UNSET))


        def _parse_snapshot(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        snapshot = _parse_snapshot(d.pop("snapshot", UNSET))


        def _parse_started_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                started_at_type_0 = datetime.datetime.fromisoformat(data)



                return started_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        started_at = _parse_started_at(d.pop("started_at", UNSET))


        job_info = cls(
            backend=backend,
            created_at=created_at,
            id=id,
            spec=spec,
            status=status,
            submission_id=submission_id,
            submitter=submitter,
            cancel_requested=cancel_requested,
            exit_code=exit_code,
            finished_at=finished_at,
            reason=reason,
            signal=signal,
            snapshot=snapshot,
            started_at=started_at,
        )


        job_info.additional_properties = d
        return job_info

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
