"""The runtime of every generated package: the modules that do not change with the spec
(signatures, dedupe stores, the inbox and its workers, the receiver, the app, the errors, the testing kit, the demo
command, the models' base classes). ``codegen.emit.templates`` copies each one into the
package as it stands here, under a generated-file header; this ``__init__`` is not copied.

They are ordinary Python, linted and type-checked in place. What they import from the
modules the spec shapes (``events``, ``handlers``) is declared for type checkers by the
``.pyi`` stubs beside them, which are not copied either: the generated modules of those
names (from ``codegen/templates``) provide it.
"""

# The modules copied into every package, by file name.
MODULES = (
    "__main__.py", "_base.py", "_cli.py", "_inbox_sql.py", "_parsing.py", "_root.py", "_sqlite.py", "app.py", "dedupe.py", "django.py", "errors.py", "flask.py", "inbox.py", "metrics.py", "observe.py",
    "receiver.py", "redact.py", "signature.py", "testing.py", "tracing.py", "worker.py",
)  # fmt: skip
