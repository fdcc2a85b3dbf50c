"""What the server does for a request, apart from HTTP: the routes call these.

Each function takes the server's state and plain values, returns the API's schemas,
and refuses with `errors.ApiError` (the status, code and message the client gets).
"""
