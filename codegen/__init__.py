"""Turns incident.io's webhook spec into the typed ``incident_webhooks`` package.

The flow is one-way and each step lives in its own module:
``loader`` reads bytes into a document, ``parser`` turns the document into the small
intermediate model in ``ir``, the ``emit`` package renders that model, and ``project``
writes the rendered files (atomically) or compares them with what is on disk.
"""

# Part of every generated project's version, so that a change of generator shows there too.
__version__ = "0.2.0"
