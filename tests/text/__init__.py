"""Tests of bot_bottle.text: the terminal sanitizer and the HTML escaper."""
