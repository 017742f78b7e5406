"""``bot-bottle dashboard``: the operator's review in a local web page.

Runs on the host, in the operator's session: ``verb`` starts it, ``server``
answers the browser (access, decisions), ``pages`` writes the HTML and
``static/`` holds its one script and stylesheet.
"""
