from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_response import ErrorResponse
from ...models.get_logs_stream import GetLogsStream
from ...models.log_chunk import LogChunk
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    job_id: str,
    *,
    stream: GetLogsStream | Unset = GetLogsStream.STDOUT,
    offset: int | Unset = 0,
    limit: int | Unset = 1048576,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_stream: str | Unset = UNSET
    if not isinstance(stream, Unset):
        json_stream = stream.value

    params["stream"] = json_stream

    params["offset"] = offset

    params["limit"] = limit


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/jobs/{job_id}/logs".format(job_id=quote(str(job_id), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorResponse | LogChunk | None:
    if response.status_code == 200:
        response_200 = LogChunk.from_dict(response.json())



        return response_200

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())



        return response_401

    if response.status_code == 404:
        response_404 = ErrorResponse.from_dict(response.json())



        return response_404

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorResponse | LogChunk]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
    stream: GetLogsStream | Unset = GetLogsStream.STDOUT,
    offset: int | Unset = 0,
    limit: int | Unset = 1048576,

) -> Response[ErrorResponse | LogChunk]:
    """ Get Logs

     Up to `limit` bytes of one stream from byte `offset`: exact in `data_b64`.
    `index` is the job's write-order index (24-byte records: when each piece of
    output was written, to which stream, where; see docs/server.md).

    Args:
        job_id (str): the job's id
        stream (GetLogsStream | Unset):  Default: GetLogsStream.STDOUT.
        offset (int | Unset):  Default: 0.
        limit (int | Unset):  Default: 1048576.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | LogChunk]
     """


    kwargs = _get_kwargs(
        job_id=job_id,
stream=stream,
offset=offset,
limit=limit,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    job_id: str,
    *,
    client: AuthenticatedClient,
    stream: GetLogsStream | Unset = GetLogsStream.STDOUT,
    offset: int | Unset = 0,
    limit: int | Unset = 1048576,

) -> ErrorResponse | LogChunk | None:
    """ Get Logs

     Up to `limit` bytes of one stream from byte `offset`: exact in `data_b64`.
    `index` is the job's write-order index (24-byte records: when each piece of
    output was written, to which stream, where; see docs/server.md).

    Args:
        job_id (str): the job's id
        stream (GetLogsStream | Unset):  Default: GetLogsStream.STDOUT.
        offset (int | Unset):  Default: 0.
        limit (int | Unset):  Default: 1048576.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | LogChunk
     """


    return sync_detailed(
        job_id=job_id,
client=client,
stream=stream,
offset=offset,
limit=limit,

    ).parsed

async def asyncio_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
    stream: GetLogsStream | Unset = GetLogsStream.STDOUT,
    offset: int | Unset = 0,
    limit: int | Unset = 1048576,

) -> Response[ErrorResponse | LogChunk]:
    """ Get Logs

     Up to `limit` bytes of one stream from byte `offset`: exact in `data_b64`.
    `index` is the job's write-order index (24-byte records: when each piece of
    output was written, to which stream, where; see docs/server.md).

    Args:
        job_id (str): the job's id
        stream (GetLogsStream | Unset):  Default: GetLogsStream.STDOUT.
        offset (int | Unset):  Default: 0.
        limit (int | Unset):  Default: 1048576.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | LogChunk]
     """


    kwargs = _get_kwargs(
        job_id=job_id,
stream=stream,
offset=offset,
limit=limit,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    job_id: str,
    *,
    client: AuthenticatedClient,
    stream: GetLogsStream | Unset = GetLogsStream.STDOUT,
    offset: int | Unset = 0,
    limit: int | Unset = 1048576,

) -> ErrorResponse | LogChunk | None:
    """ Get Logs

     Up to `limit` bytes of one stream from byte `offset`: exact in `data_b64`.
    `index` is the job's write-order index (24-byte records: when each piece of
    output was written, to which stream, where; see docs/server.md).

    Args:
        job_id (str): the job's id
        stream (GetLogsStream | Unset):  Default: GetLogsStream.STDOUT.
        offset (int | Unset):  Default: 0.
        limit (int | Unset):  Default: 1048576.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | LogChunk
     """


    return (await asyncio_detailed(
        job_id=job_id,
client=client,
stream=stream,
offset=offset,
limit=limit,

    )).parsed
