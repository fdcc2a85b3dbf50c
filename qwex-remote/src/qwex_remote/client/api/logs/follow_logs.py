from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_response import ErrorResponse
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    job_id: str,
    *,
    stdout_offset: int | Unset = 0,
    stderr_offset: int | Unset = 0,
    index_offset: int | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(last_event_id, Unset):
        headers["last-event-id"] = last_event_id



    

    params: dict[str, Any] = {}

    params["stdout_offset"] = stdout_offset

    params["stderr_offset"] = stderr_offset

    json_index_offset: int | None | Unset
    if isinstance(index_offset, Unset):
        json_index_offset = UNSET
    else:
        json_index_offset = index_offset
    params["index_offset"] = json_index_offset


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/jobs/{job_id}/logs/follow".format(job_id=quote(str(job_id), safe=""),),
        "params": params,
    }


    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorResponse | str | None:
    if response.status_code == 200:
        response_200 = response.text
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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorResponse | str]:
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
    stdout_offset: int | Unset = 0,
    stderr_offset: int | Unset = 0,
    index_offset: int | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> Response[ErrorResponse | str]:
    """ Follow Logs

     Stream a job's output as it is written, then its end. Resumable from offsets
    (or the `Last-Event-ID` header). With `index_offset`, the job's write-order index
    comes too, as stream `index` (and the event ids have a third offset).

    Args:
        job_id (str): the job's id
        stdout_offset (int | Unset):  Default: 0.
        stderr_offset (int | Unset):  Default: 0.
        index_offset (int | None | Unset):
        last_event_id (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | str]
     """


    kwargs = _get_kwargs(
        job_id=job_id,
stdout_offset=stdout_offset,
stderr_offset=stderr_offset,
index_offset=index_offset,
last_event_id=last_event_id,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    job_id: str,
    *,
    client: AuthenticatedClient,
    stdout_offset: int | Unset = 0,
    stderr_offset: int | Unset = 0,
    index_offset: int | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> ErrorResponse | str | None:
    """ Follow Logs

     Stream a job's output as it is written, then its end. Resumable from offsets
    (or the `Last-Event-ID` header). With `index_offset`, the job's write-order index
    comes too, as stream `index` (and the event ids have a third offset).

    Args:
        job_id (str): the job's id
        stdout_offset (int | Unset):  Default: 0.
        stderr_offset (int | Unset):  Default: 0.
        index_offset (int | None | Unset):
        last_event_id (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | str
     """


    return sync_detailed(
        job_id=job_id,
client=client,
stdout_offset=stdout_offset,
stderr_offset=stderr_offset,
index_offset=index_offset,
last_event_id=last_event_id,

    ).parsed

async def asyncio_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
    stdout_offset: int | Unset = 0,
    stderr_offset: int | Unset = 0,
    index_offset: int | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> Response[ErrorResponse | str]:
    """ Follow Logs

     Stream a job's output as it is written, then its end. Resumable from offsets
    (or the `Last-Event-ID` header). With `index_offset`, the job's write-order index
    comes too, as stream `index` (and the event ids have a third offset).

    Args:
        job_id (str): the job's id
        stdout_offset (int | Unset):  Default: 0.
        stderr_offset (int | Unset):  Default: 0.
        index_offset (int | None | Unset):
        last_event_id (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | str]
     """


    kwargs = _get_kwargs(
        job_id=job_id,
stdout_offset=stdout_offset,
stderr_offset=stderr_offset,
index_offset=index_offset,
last_event_id=last_event_id,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    job_id: str,
    *,
    client: AuthenticatedClient,
    stdout_offset: int | Unset = 0,
    stderr_offset: int | Unset = 0,
    index_offset: int | None | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> ErrorResponse | str | None:
    """ Follow Logs

     Stream a job's output as it is written, then its end. Resumable from offsets
    (or the `Last-Event-ID` header). With `index_offset`, the job's write-order index
    comes too, as stream `index` (and the event ids have a third offset).

    Args:
        job_id (str): the job's id
        stdout_offset (int | Unset):  Default: 0.
        stderr_offset (int | Unset):  Default: 0.
        index_offset (int | None | Unset):
        last_event_id (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | str
     """


    return (await asyncio_detailed(
        job_id=job_id,
client=client,
stdout_offset=stdout_offset,
stderr_offset=stderr_offset,
index_offset=index_offset,
last_event_id=last_event_id,

    )).parsed
