"""The portal move (reload-portal): the old portal hands its telnet connections over
(`handover.py`), the new one takes them (`takeover.py`); the frames they exchange are
on the shared floor (`portal/handover_frames.py`, which the telnet door also needs).
Imports the floor, `ipc` and `portal.telnet` (it moves telnet sessions); no other door.
"""
