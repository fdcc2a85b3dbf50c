from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ResourceRequirements")



@_attrs_define
class ResourceRequirements:
    """ What a run asks for. Backends translate it (Docker: nano_cpus, mem_limit, device_requests).

        Attributes:
            cpu (float | None | Unset): CPU cores, e.g. 0.5 or 4
            gpu (int | None | Unset): number of GPUs
            memory (None | str | Unset): memory limit, e.g. 512Mi or 4Gi
     """

    cpu: float | None | Unset = UNSET
    gpu: int | None | Unset = UNSET
    memory: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        cpu: float | None | Unset
        if isinstance(self.cpu, Unset):
            cpu = UNSET
        else:
            cpu = self.cpu

        gpu: int | None | Unset
        if isinstance(self.gpu, Unset):
            gpu = UNSET
        else:
            gpu = self.gpu

        memory: None | str | Unset
        if isinstance(self.memory, Unset):
            memory = UNSET
        else:
            memory = self.memory


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if cpu is not UNSET:
            field_dict["cpu"] = cpu
        if gpu is not UNSET:
            field_dict["gpu"] = gpu
        if memory is not UNSET:
            field_dict["memory"] = memory

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_cpu(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        cpu = _parse_cpu(d.pop("cpu", UNSET))


        def _parse_gpu(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        gpu = _parse_gpu(d.pop("gpu", UNSET))


        def _parse_memory(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        memory = _parse_memory(d.pop("memory", UNSET))


        resource_requirements = cls(
            cpu=cpu,
            gpu=gpu,
            memory=memory,
        )

        return resource_requirements

