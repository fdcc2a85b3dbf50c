from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="Mount")



@_attrs_define
class Mount:
    """ A host path made visible to the run (containers only).

        Attributes:
            source (str):
            target (str):
            read_only (bool | Unset):  Default: False.
     """

    source: str
    target: str
    read_only: bool | Unset = False





    def to_dict(self) -> dict[str, Any]:
        source = self.source

        target = self.target

        read_only = self.read_only


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "source": source,
            "target": target,
        })
        if read_only is not UNSET:
            field_dict["read_only"] = read_only

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        source = d.pop("source")

        target = d.pop("target")

        read_only = d.pop("read_only", UNSET)

        mount = cls(
            source=source,
            target=target,
            read_only=read_only,
        )

        return mount

