from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_response import ErrorResponse
from ...models.snapshot_info import SnapshotInfo
from ...types import File, FileTypes
from io import BytesIO
from typing import cast



def _get_kwargs(
    sha256: str,
    *,
    body: File,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/api/v1/snapshots/{sha256}".format(sha256=quote(str(sha256), safe=""),),
    }

    _kwargs["content"] = body.payload
    headers["Content-Type"] = "application/octet-stream"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorResponse | SnapshotInfo | None:
    if response.status_code == 200:
        response_200 = SnapshotInfo.from_dict(response.json())



        return response_200

    if response.status_code == 201:
        response_201 = SnapshotInfo.from_dict(response.json())



        return response_201

    if response.status_code == 400:
        response_400 = ErrorResponse.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())



        return response_401

    if response.status_code == 403:
        response_403 = ErrorResponse.from_dict(response.json())



        return response_403

    if response.status_code == 413:
        response_413 = ErrorResponse.from_dict(response.json())



        return response_413

    if response.status_code == 422:
        response_422 = ErrorResponse.from_dict(response.json())



        return response_422

    if response.status_code == 503:
        response_503 = ErrorResponse.from_dict(response.json())



        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorResponse | SnapshotInfo]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    sha256: str,
    *,
    client: AuthenticatedClient,
    body: File,

) -> Response[ErrorResponse | SnapshotInfo]:
    """ Put Snapshot

     Upload a project snapshot (tar.gz), named by its sha256: verified, size-limited,
    and a no-op (200) when the server has it.

    Args:
        sha256 (str): sha256 of the snapshot (hex)
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | SnapshotInfo]
     """


    kwargs = _get_kwargs(
        sha256=sha256,
body=body,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    sha256: str,
    *,
    client: AuthenticatedClient,
    body: File,

) -> ErrorResponse | SnapshotInfo | None:
    """ Put Snapshot

     Upload a project snapshot (tar.gz), named by its sha256: verified, size-limited,
    and a no-op (200) when the server has it.

    Args:
        sha256 (str): sha256 of the snapshot (hex)
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | SnapshotInfo
     """


    return sync_detailed(
        sha256=sha256,
client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    sha256: str,
    *,
    client: AuthenticatedClient,
    body: File,

) -> Response[ErrorResponse | SnapshotInfo]:
    """ Put Snapshot

     Upload a project snapshot (tar.gz), named by its sha256: verified, size-limited,
    and a no-op (200) when the server has it.

    Args:
        sha256 (str): sha256 of the snapshot (hex)
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | SnapshotInfo]
     """


    kwargs = _get_kwargs(
        sha256=sha256,
body=body,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    sha256: str,
    *,
    client: AuthenticatedClient,
    body: File,

) -> ErrorResponse | SnapshotInfo | None:
    """ Put Snapshot

     Upload a project snapshot (tar.gz), named by its sha256: verified, size-limited,
    and a no-op (200) when the server has it.

    Args:
        sha256 (str): sha256 of the snapshot (hex)
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | SnapshotInfo
     """


    return (await asyncio_detailed(
        sha256=sha256,
client=client,
body=body,

    )).parsed
