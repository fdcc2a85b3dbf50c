from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.job_submission_env import JobSubmissionEnv
  from ..models.job_submission_labels import JobSubmissionLabels
  from ..models.job_submission_secrets import JobSubmissionSecrets
  from ..models.mount import Mount
  from ..models.resource_requirements import ResourceRequirements





T = TypeVar("T", bound="JobSubmission")



@_attrs_define
class JobSubmission:
    """ A job to run. Sending the same `submission_id` again returns the job it made.

        Attributes:
            command (list[str]): the command and its arguments
            submission_id (str): chosen by the client, unique per submitter: a retry with the same id and spec returns the
                same job
            backend (None | str | Unset): a backend the server allows (default: the server's)
            env (JobSubmissionEnv | Unset):
            grace_period (float | Unset):  Default: 10.0.
            image (None | str | Unset): container image (container backends)
            labels (JobSubmissionLabels | Unset):
            mounts (list[Mount] | Unset): refused unless allowed; source and target at most 4096 characters
            name (None | str | Unset):
            network (None | str | Unset): container network, if allowed
            profile (None | str | Unset): a server-side profile the server allows
            resources (ResourceRequirements | Unset): What a run asks for. Backends translate it (Docker: nano_cpus,
                mem_limit, device_requests).
            secrets (JobSubmissionSecrets | Unset): environment variable -> name of a server-side secret (`qwex serve secret
                add NAME`): the job gets the value in that variable; no route or record shows it
            snapshot (None | str | Unset): sha256 of an uploaded snapshot to run in
            workdir (None | str | Unset): the folder of the snapshot the command starts in, relative to its root (default:
                the root)
     """

    command: list[str]
    submission_id: str
    backend: None | str | Unset = UNSET
    env: JobSubmissionEnv | Unset = UNSET
    grace_period: float | Unset = 10.0
    image: None | str | Unset = UNSET
    labels: JobSubmissionLabels | Unset = UNSET
    mounts: list[Mount] | Unset = UNSET
    name: None | str | Unset = UNSET
    network: None | str | Unset = UNSET
    profile: None | str | Unset = UNSET
    resources: ResourceRequirements | Unset = UNSET
    secrets: JobSubmissionSecrets | Unset = UNSET
    snapshot: None | str | Unset = UNSET
    workdir: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.job_submission_env import JobSubmissionEnv # noqa: PLC0415
        from ..models.job_submission_labels import JobSubmissionLabels # noqa: PLC0415
        from ..models.job_submission_secrets import JobSubmissionSecrets # noqa: PLC0415
        from ..models.mount import Mount # noqa: PLC0415
        from ..models.resource_requirements import ResourceRequirements # noqa: PLC0415
        command = self.command



        submission_id = self.submission_id

        backend: None | str | Unset
        if isinstance(self.backend, Unset):
            backend = UNSET
        else:
            backend = self.backend

        env: dict[str, Any] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env.to_dict()

        grace_period = self.grace_period

        image: None | str | Unset
        if isinstance(self.image, Unset):
            image = UNSET
        else:
            image = self.image

        labels: dict[str, Any] | Unset = UNSET
        if not isinstance(self.labels, Unset):
            labels = self.labels.to_dict()

        mounts: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.mounts, Unset):
            mounts = []
            for mounts_item_data in self.mounts:
                mounts_item = mounts_item_data.to_dict()
                mounts.append(mounts_item)



        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        network: None | str | Unset
        if isinstance(self.network, Unset):
            network = UNSET
        else:
            network = self.network

        profile: None | str | Unset
        if isinstance(self.profile, Unset):
            profile = UNSET
        else:
            profile = self.profile

        resources: dict[str, Any] | Unset = UNSET
        if not isinstance(self.resources, Unset):
            resources = self.resources.to_dict()

        secrets: dict[str, Any] | Unset = UNSET
        if not isinstance(self.secrets, Unset):
            secrets = self.secrets.to_dict()

        snapshot: None | str | Unset
        if isinstance(self.snapshot, Unset):
            snapshot = UNSET
        else:
            snapshot = self.snapshot

        workdir: None | str | Unset
        if isinstance(self.workdir, Unset):
            workdir = UNSET
        else:
            workdir = self.workdir


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "command": command,
            "submission_id": submission_id,
        })
        if backend is not UNSET:
            field_dict["backend"] = backend
        if env is not UNSET:
            field_dict["env"] = env
        if grace_period is not UNSET:
            field_dict["grace_period"] = grace_period
        if image is not UNSET:
            field_dict["image"] = image
        if labels is not UNSET:
            field_dict["labels"] = labels
        if mounts is not UNSET:
            field_dict["mounts"] = mounts
        if name is not UNSET:
            field_dict["name"] = name
        if network is not UNSET:
            field_dict["network"] = network
        if profile is not UNSET:
            field_dict["profile"] = profile
        if resources is not UNSET:
            field_dict["resources"] = resources
        if secrets is not UNSET:
            field_dict["secrets"] = secrets
        if snapshot is not UNSET:
            field_dict["snapshot"] = snapshot
        if workdir is not UNSET:
            field_dict["workdir"] = workdir

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.job_submission_env import JobSubmissionEnv # noqa: PLC0415
        from ..models.job_submission_labels import JobSubmissionLabels # noqa: PLC0415
        from ..models.job_submission_secrets import JobSubmissionSecrets # noqa: PLC0415
        from ..models.mount import Mount # noqa: PLC0415
        from ..models.resource_requirements import ResourceRequirements # noqa: PLC0415
        d = dict(src_dict)
        command = cast(list[str], d.pop("command"))


        submission_id = d.pop("submission_id")

        def _parse_backend(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        backend = _parse_backend(d.pop("backend", UNSET))


        _env = d.pop("env", UNSET)
        env: JobSubmissionEnv | Unset
        if isinstance(_env,  Unset):
            env = UNSET
        else:
            env = JobSubmissionEnv.from_dict(_env)




        grace_period = d.pop("grace_period", UNSET)

        def _parse_image(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        image = _parse_image(d.pop("image", UNSET))


        _labels = d.pop("labels", UNSET)
        labels: JobSubmissionLabels | Unset
        if isinstance(_labels,  Unset):
            labels = UNSET
        else:
            labels = JobSubmissionLabels.from_dict(_labels)




        _mounts = d.pop("mounts", UNSET)
        mounts: list[Mount] | Unset = UNSET
        if _mounts is not UNSET:
            mounts = []
            for mounts_item_data in _mounts:
                mounts_item = Mount.from_dict(mounts_item_data)



                mounts.append(mounts_item)


        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))


        def _parse_network(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        network = _parse_network(d.pop("network", UNSET))


        def _parse_profile(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        profile = _parse_profile(d.pop("profile", UNSET))


        _resources = d.pop("resources", UNSET)
        resources: ResourceRequirements | Unset
        if isinstance(_resources,  Unset):
            resources = UNSET
        else:
            resources = ResourceRequirements.from_dict(_resources)




        _secrets = d.pop("secrets", UNSET)
        secrets: JobSubmissionSecrets | Unset
        if isinstance(_secrets,  Unset):
            secrets = UNSET
        else:
            secrets = JobSubmissionSecrets.from_dict(_secrets)




        def _parse_snapshot(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        snapshot = _parse_snapshot(d.pop("snapshot", UNSET))


        def _parse_workdir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workdir = _parse_workdir(d.pop("workdir", UNSET))


        job_submission = cls(
            command=command,
            submission_id=submission_id,
            backend=backend,
            env=env,
            grace_period=grace_period,
            image=image,
            labels=labels,
            mounts=mounts,
            name=name,
            network=network,
            profile=profile,
            resources=resources,
            secrets=secrets,
            snapshot=snapshot,
            workdir=workdir,
        )

        return job_submission

