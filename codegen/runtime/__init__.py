"""The runtime of every generated package: the modules that do not change with the spec
(signatures, dedupe stores, the inbox and its workers, the receiver, the app, the errors, the testing kit, the demo
command, the models' base classes). ``codegen.emit.templates`` copies each one into the
package as it stands here, under a generated-file header; this ``__init__`` is not copied.

They are ordinary Python, linted and type-checked in place. What they import from the
modules the spec shapes (``events``, ``handlers``) is declared for type checkers by the
``.pyi`` stubs beside them, which are not copied either: the generated modules of those
names (from ``codegen/templates``) provide it.
"""

from pathlib import Path

# The modules copied into every package, by file name: every module of this folder but this
# one (a new runtime module is copied by being here).
MODULES = tuple(
    sorted(
        path.name
        for path in Path(__file__).parent.glob("*.py")
        if path.name != "__init__.py"
    )
)
