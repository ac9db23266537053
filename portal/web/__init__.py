"""The web client: Hearth's page, Evennia's websocket and ajax transports, on one port.
`http` (h11), `ajax`, `wire` and `html` are sans-I/O; `sessions` holds the web sessions and
their takeover rule; `server` is the asyncio shell; `static` the page. Imports the shared
floor (`portal.*` modules, `portal.oob`) and `ipc`; never another door nor `portal.move`.
"""
