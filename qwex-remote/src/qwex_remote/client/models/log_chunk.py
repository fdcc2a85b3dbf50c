from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="LogChunk")



@_attrs_define
class LogChunk:
    """ The bytes of one stream's log from byte `offset` to `next_offset`, exactly as the job
    wrote them in `data_b64`; `data` is the same bytes as text (UTF-8, each invalid byte
    and a character cut at either end replaced by U+FFFD), for reading by eye.

        Attributes:
            data (str): the bytes decoded as UTF-8, invalid ones replaced
            data_b64 (str): the bytes, base64-encoded: what a copy of the log keeps
            final (bool): the job is final and nothing follows `next_offset`
            next_offset (int):
            offset (int):
            stream (str):
     """

    data: str
    data_b64: str
    final: bool
    next_offset: int
    offset: int
    stream: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        data = self.data

        data_b64 = self.data_b64

        final = self.final

        next_offset = self.next_offset

        offset = self.offset

        stream = self.stream


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "data": data,
            "data_b64": data_b64,
            "final": final,
            "next_offset": next_offset,
            "offset": offset,
            "stream": stream,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        data = d.pop("data")

        data_b64 = d.pop("data_b64")

        final = d.pop("final")

        next_offset = d.pop("next_offset")

        offset = d.pop("offset")

        stream = d.pop("stream")

        log_chunk = cls(
            data=data,
            data_b64=data_b64,
            final=final,
            next_offset=next_offset,
            offset=offset,
            stream=stream,
        )


        log_chunk.additional_properties = d
        return log_chunk

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
