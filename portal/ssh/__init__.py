"""The SSH door: the asyncssh server and its sessions (`server.py`) and the line editor
and terminal flags of an SSH channel (`input.py`). Imports the shared floor (`portal.*`
modules) and `ipc`; never another door (`portal.telnet`, `portal.web`) nor `portal.move`.
"""
