"""``bot-bottle dashboard``: the operator's review in a local web page.

Runs on the host, in the operator's session: ``verb`` starts it; ``server``
answers the browser's pages and change feed, ``posts`` its forms, on
``handler``'s base (who may ask, what every answer carries); ``state`` is
what one dashboard holds; ``inbox_page``, ``proposal_page`` and ``pages``
write the HTML, and ``static/`` holds its one script and stylesheet.
"""
