"""``bot-bottle supervise``: the operator's terminal UI over every bottle's pending proposals.

Runs on the host, in the operator's terminal: ``verb`` is the command,
``app`` the review (the list, the detail, the keys that decide) and
``screen`` the terminal under it, through which every string an agent wrote
passes the one sanitizer before curses draws it.
"""
