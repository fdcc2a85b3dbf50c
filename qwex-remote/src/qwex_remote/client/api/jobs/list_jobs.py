from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_response import ErrorResponse
from ...models.job_page import JobPage
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    *,
    status: list[str] | None | Unset = UNSET,
    backend: None | str | Unset = UNSET,
    submitter: None | str | Unset = UNSET,
    cursor: None | str | Unset = UNSET,
    limit: int | Unset = 50,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_status: list[str] | None | Unset
    if isinstance(status, Unset):
        json_status = UNSET
    elif isinstance(status, list):
        json_status = status


    else:
        json_status = status
    params["status"] = json_status

    json_backend: None | str | Unset
    if isinstance(backend, Unset):
        json_backend = UNSET
    else:
        json_backend = backend
    params["backend"] = json_backend

    json_submitter: None | str | Unset
    if isinstance(submitter, Unset):
        json_submitter = UNSET
    else:
        json_submitter = submitter
    params["submitter"] = json_submitter

    json_cursor: None | str | Unset
    if isinstance(cursor, Unset):
        json_cursor = UNSET
    else:
        json_cursor = cursor
    params["cursor"] = json_cursor

    params["limit"] = limit


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/jobs",
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorResponse | JobPage | None:
    if response.status_code == 200:
        response_200 = JobPage.from_dict(response.json())



        return response_200

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())



        return response_401

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorResponse | JobPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    status: list[str] | None | Unset = UNSET,
    backend: None | str | Unset = UNSET,
    submitter: None | str | Unset = UNSET,
    cursor: None | str | Unset = UNSET,
    limit: int | Unset = 50,

) -> Response[ErrorResponse | JobPage]:
    """ List Jobs

     Jobs newest first, a page at a time (`next_cursor` gives the next page).

    Args:
        status (list[str] | None | Unset): only these statuses
        backend (None | str | Unset):
        submitter (None | str | Unset):
        cursor (None | str | Unset):
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobPage]
     """


    kwargs = _get_kwargs(
        status=status,
backend=backend,
submitter=submitter,
cursor=cursor,
limit=limit,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient,
    status: list[str] | None | Unset = UNSET,
    backend: None | str | Unset = UNSET,
    submitter: None | str | Unset = UNSET,
    cursor: None | str | Unset = UNSET,
    limit: int | Unset = 50,

) -> ErrorResponse | JobPage | None:
    """ List Jobs

     Jobs newest first, a page at a time (`next_cursor` gives the next page).

    Args:
        status (list[str] | None | Unset): only these statuses
        backend (None | str | Unset):
        submitter (None | str | Unset):
        cursor (None | str | Unset):
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobPage
     """


    return sync_detailed(
        client=client,
status=status,
backend=backend,
submitter=submitter,
cursor=cursor,
limit=limit,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    status: list[str] | None | Unset = UNSET,
    backend: None | str | Unset = UNSET,
    submitter: None | str | Unset = UNSET,
    cursor: None | str | Unset = UNSET,
    limit: int | Unset = 50,

) -> Response[ErrorResponse | JobPage]:
    """ List Jobs

     Jobs newest first, a page at a time (`next_cursor` gives the next page).

    Args:
        status (list[str] | None | Unset): only these statuses
        backend (None | str | Unset):
        submitter (None | str | Unset):
        cursor (None | str | Unset):
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | JobPage]
     """


    kwargs = _get_kwargs(
        status=status,
backend=backend,
submitter=submitter,
cursor=cursor,
limit=limit,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient,
    status: list[str] | None | Unset = UNSET,
    backend: None | str | Unset = UNSET,
    submitter: None | str | Unset = UNSET,
    cursor: None | str | Unset = UNSET,
    limit: int | Unset = 50,

) -> ErrorResponse | JobPage | None:
    """ List Jobs

     Jobs newest first, a page at a time (`next_cursor` gives the next page).

    Args:
        status (list[str] | None | Unset): only these statuses
        backend (None | str | Unset):
        submitter (None | str | Unset):
        cursor (None | str | Unset):
        limit (int | Unset):  Default: 50.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | JobPage
     """


    return (await asyncio_detailed(
        client=client,
status=status,
backend=backend,
submitter=submitter,
cursor=cursor,
limit=limit,

    )).parsed
