"""git-gate: the pre-receive hook of a bottle's git remotes, run in the sidecar.

Every object a push adds is read with git (``objects``), shown to gitleaks
in every form a reader or a checkout would see (``scan``, ``views``), and
what it finds is masked before it is filed (``findings``); ``hook`` decides
the push, ``install`` writes the hook, ``cli`` is ``python -m
bot_bottle.git_gate``. The pushed objects are the agent's, and hostile.
"""
